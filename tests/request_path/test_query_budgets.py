"""Query budgets per event, pinned (docs/architecture.md, Performance).

Counted with the gateway record and channel rule caches warm, as they are after a
process's first request.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_aws_api_gateway_websockets import channel_access, signals, tokens
from django_aws_api_gateway_websockets.gateway_lookup import get_gateway
from django_aws_api_gateway_websockets.testing.client import new_connection_id

from ..helpers import statements_on_the_wire


def statements(context):
    """The SQL queries run. Transaction control is not a query: the test's own transaction
    turns each request's atomic block into SAVEPOINT/RELEASE statements, where production
    (autocommit) runs BEGIN/COMMIT through the driver, which are not logged as queries."""
    return [
        q["sql"]
        for q in context.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT"))
    ]


def own_queries(context):
    """Our queries: Django's own session and user loads are outside the budget (our token
    spend joins the user table: it counts)."""
    return [sql for sql in statements(context) if not is_django_load(sql)]


def is_django_load(sql):
    head = sql.split(" WHERE ", 1)[0]
    return sql.startswith("SELECT") and (' FROM "django_session"' in head or ' FROM "auth_user"' in head)


@pytest.fixture
def warm(gateway):
    get_gateway(gateway.api_id)
    channel_access.channel_rules()


@pytest.mark.django_db
def test_message_costs_at_most_two_queries(post_as_gateway, session_row, warm):
    with CaptureQueriesContext(connection) as context:
        response = post_as_gateway("/ws/", session_row.connection_id, body={"handler": "whoami"})
    assert response.status_code == 200
    assert len(statements(context)) <= 2, statements(context)


@pytest.mark.django_db
def test_the_message_rate_limit_costs_no_statement_of_its_own(post_as_gateway, session_row, warm, settings):
    settings.WEBSOCKETS = {"message_rate_limit": 1, "message_rate_burst": 1}
    with CaptureQueriesContext(connection) as context:
        assert post_as_gateway("/ws/", session_row.connection_id, body={"handler": "whoami"}).status_code == 200
    # The row's SELECT reads the bucket; the UPDATE that counts the message writes it.
    assert len(statements(context)) == 2, statements(context)
    assert "message_tat_us" in statements(context)[1]
    with CaptureQueriesContext(connection) as context:
        assert post_as_gateway("/ws/", session_row.connection_id, body={"handler": "whoami"}).status_code == 429
    assert len(statements(context)) == 1, statements(context)  # refused: the SELECT only, nothing written


@pytest.mark.django_db
def test_a_message_refused_after_the_rate_check_costs_one_update_of_the_limiter_state(
    post_as_gateway, session_row, warm
):
    with CaptureQueriesContext(connection) as context:
        assert post_as_gateway("/ws/", session_row.connection_id, body="{not json").status_code == 400
    # The row's SELECT, then its place spent: the limiter's state only (the one extra statement
    # of the refused path; a 429 is refused before it and writes nothing).
    assert len(statements(context)) == 2, statements(context)
    assert statements(context)[1].startswith("UPDATE") and "request_count" not in statements(context)[1]


@pytest.mark.django_db
def test_disconnect_costs_at_most_two_queries(post_as_gateway, session_row, warm):
    with CaptureQueriesContext(connection) as context:
        response = post_as_gateway("/ws/", session_row.connection_id, route="disconnect")
    assert response.status_code == 200
    assert len(statements(context)) <= 2, statements(context)


@pytest.mark.django_db
def test_connect_with_token_and_rate_limit_costs_at_most_five(client, user, post_as_gateway, warm):
    client.force_login(user)
    raw = tokens.issue_token(user, client.session.session_key)
    with CaptureQueriesContext(connection) as context:
        response = post_as_gateway("/ws/", new_connection_id(), route="connect", query=f"ws_token={raw}&channel=c")
    assert response.status_code == 200
    # The rate-limit decision (one upsert for the IP and user counters), the token found and
    # spent (one UPDATE … RETURNING), the session row, its first subscription (issue #25: the
    # connect query's channel; on PostgreSQL the one-statement connect writes both in its
    # statement), the audit row after the decision.
    assert len(own_queries(context)) <= 5, own_queries(context)


@pytest.mark.django_db
def test_connect_rate_limit_decision_is_one_statement_and_a_refusal_past_the_limit_writes_nothing(
    post_as_gateway, warm, settings
):
    settings.WEBSOCKETS = {"rate_limit_max_attempts": 1}
    post_as_gateway("/open/", new_connection_id(), route="connect")
    post_as_gateway("/open/", new_connection_id(), route="connect")  # the first refusal: audited
    with CaptureQueriesContext(connection) as context:
        response = post_as_gateway("/open/", new_connection_id(), route="connect")
    assert response.status_code == 429
    assert len(own_queries(context)) == 1, own_queries(context)  # the upsert, which changed nothing


@pytest.mark.django_db
def test_cold_gateway_cache_costs_one_more_query(post_as_gateway, session_row, gateway):
    with CaptureQueriesContext(connection) as context:
        post_as_gateway("/open/", new_connection_id(), route="connect")
    cold = len(statements(context))
    with CaptureQueriesContext(connection) as context:
        post_as_gateway("/open/", new_connection_id(), route="connect")
    assert len(statements(context)) == cold - 1


@pytest.mark.django_db
def test_a_plain_disconnect_opens_no_transaction(post_as_gateway, session_row, warm):
    from tests.views import ChatView

    assert not signals.disconnected.has_listeners(ChatView)
    with CaptureQueriesContext(connection) as context:
        assert post_as_gateway("/ws/", session_row.connection_id, route="disconnect").status_code == 200
    assert len(context.captured_queries) == 2, [q["sql"] for q in context.captured_queries]  # no SAVEPOINT


@pytest.mark.django_db
def test_message_checking_that_the_django_session_exists_costs_two_queries(client, user, post_as_gateway, warm):
    # A connect with the database session's cookie: the row keeps the key, and the message's
    # SELECT joins the session (login.session_ended) instead of a query of its own.
    client.force_login(user)
    raw = tokens.issue_token(user, client.session.session_key)
    cid = new_connection_id()
    assert post_as_gateway("/ws/", cid, route="connect", query=f"ws_token={raw}").status_code == 200
    with CaptureQueriesContext(connection) as context:
        response = post_as_gateway("/ws/", cid, body={"handler": "whoami"})
    assert response.status_code == 200
    assert len(statements(context)) == 2, statements(context)
    assert '"django_session"' in statements(context)[0]


# --- a message: the row's read, the handler in its own transaction, the count (issue #24, part 3) ---


on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the message budget is PostgreSQL's, counted on the wire (SQLite runs in the process)",
)


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_message_whose_handler_touches_no_database_is_two_statements_with_transaction_control(
    post_as_gateway, session_row, warm
):
    with statements_on_the_wire(connection) as sql:
        response = post_as_gateway("/ws/", session_row.connection_id, body={"handler": "whoami"})
    assert response.status_code == 200
    # No BEGIN/COMMIT reach the server: the handler's atomic block ran no statement.
    assert len(sql) == 2, sql
    assert sql[0].startswith("SELECT") and sql[1].startswith("UPDATE") and "request_count" in sql[1]
    session_row.refresh_from_db()
    assert session_row.request_count == 2  # 1 from the connect, 1 for the message


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_handler_that_writes_commits_in_its_own_transaction_before_the_count(post_as_gateway, session_row, warm):
    with statements_on_the_wire(connection) as sql:
        response = post_as_gateway(
            "/ws/", session_row.connection_id, body={"handler": "change_channel", "channel": "room-2"}
        )
    assert response.status_code == 200
    commit = sql.index("COMMIT")
    assert any('SET "channel_name"' in q for q in sql[:commit]), sql  # the handler's write, in its transaction
    assert "request_count" in sql[commit + 1] and len(sql) == commit + 2, sql  # then the count, on its own
    session_row.refresh_from_db()
    assert (session_row.channel_name, session_row.request_count) == ("room-2", 2)
