"""SQL queries per event through ``WebSocketView`` on PostgreSQL, every one counted.

A user's requests as they run: a browser's Django session (database sessions, the default),
its user loaded by ``AuthenticationMiddleware``, ``$connect`` with a token and the connect rate
limiting, a ``$default`` message, ``$disconnect``, each a request of its own through the whole
middleware stack. Nothing is left out (Django's own session and user loads included);
``queries_*`` counts every SQL statement, ``queries_*_with_transaction_control`` every statement
sent to the server, BEGIN/COMMIT included (read on the wire: Django's log also lists the BEGIN
and COMMIT of an atomic block that ran nothing, which the driver never sends); the SQL of each event is printed. ``$default`` and ``$disconnect``
come from API Gateway without the browser's cookie, as on AWS. The process is warm (its cached ApiGateway record), as a server is.

    python bench/queries.py        # prints JSON; `make bench` records the queries_* keys
"""

import contextlib
import json
import os
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _admin_connection():
    import psycopg

    return psycopg.connect(
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=os.environ.get("PGPORT", "5432"),
        user=os.environ.get("PGUSER", "postgres"),
        password=os.environ.get("PGPASSWORD", ""),
        dbname="postgres",
        autocommit=True,
    )


@contextlib.contextmanager
def scratch_database(prefix):
    """A fresh PostgreSQL database, migrated, with Django set up on it (bench.settings_pg);
    dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with _admin_connection() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    os.environ["BENCH_PG_NAME"] = name
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings_pg"
    sys.path.insert(0, str(ROOT))
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield name
    finally:
        from django.db import connections

        connections.close_all()
        with _admin_connection() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main():
    with scratch_database("ws_bench_queries"):
        print(json.dumps(count()), flush=True)


TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


def count():
    from urllib.parse import urlencode

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    from django_aws_api_gateway_websockets import protocol, tokens
    from django_aws_api_gateway_websockets.channel_access import channel_rules
    from django_aws_api_gateway_websockets.gateway_lookup import get_gateway
    from django_aws_api_gateway_websockets.models import ApiGateway
    from django_aws_api_gateway_websockets.testing import integration_headers
    from django_aws_api_gateway_websockets.testing.client import new_connection_id

    setup_test_environment()
    user = get_user_model().objects.create_user("bench")
    record = ApiGateway.objects.create(api_name="queries", api_id="queries01", region="us-east-1")
    # A warm process, as after its first request: the cached ApiGateway record and channel rules.
    get_gateway(record.api_id)
    channel_rules()
    browser = Client()
    browser.force_login(user)  # the browser's session cookie (a database session)
    gateway = Client()  # API Gateway's later requests carry no cookie
    connection_id = new_connection_id()
    token = tokens.issue_token(user, browser.session.session_key)  # the token view's request, before
    query = urlencode({protocol.QUERY_CHANNEL: "c", protocol.QUERY_TOKEN: token})
    steps = {
        # $connect: API Gateway forwards the handshake's headers, the browser's cookie with them.
        "connect": lambda: browser.post(
            f"/ws/{protocol.CONNECT}?{query}",
            headers=integration_headers(record, connection_id, route=protocol.CONNECT),
        ),
        "message": lambda: gateway.post(
            f"/ws/{protocol.DEFAULT}",
            '{"x":1}',
            content_type="application/json",
            headers=integration_headers(record, connection_id),
        ),
        "disconnect": lambda: gateway.post(
            f"/ws/{protocol.DISCONNECT}", headers=integration_headers(record, connection_id, route=protocol.DISCONNECT)
        ),
    }
    from tests.helpers import statements_on_the_wire

    counts, sql = {}, {}
    for step_name, step in steps.items():
        with CaptureQueriesContext(connection) as context, statements_on_the_wire(connection) as sent:
            response = step()
        assert response.status_code == 200, (step_name, response.status_code, response.content)
        statements = [q["sql"] for q in context.captured_queries]
        own = [q for q in statements if not q.upper().startswith(TRANSACTION_CONTROL)]
        counts[f"queries_{step_name}"] = len(own)
        counts[f"queries_{step_name}_with_transaction_control"] = len(sent)
        sql[step_name] = [q[:140] for q in sent]
    counts["queries_database"] = f"PostgreSQL {connection.pg_version // 10000}"
    counts["queries_sql"] = sql
    return counts


if __name__ == "__main__":
    main()
