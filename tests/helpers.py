"""Small helpers the test modules share (fixtures live in conftest.py)."""

import contextlib
import tempfile
import time

from django.contrib.auth.models import Permission

from django_aws_api_gateway_websockets.models import ChannelPermission, ChannelPermissionRule
from django_aws_api_gateway_websockets.testing.client import new_connection_id


def connect(post_as_gateway, query="", path="/ws/", connection_id=None, **kwargs):
    """A ``$connect`` as API Gateway sends it: ``(connection id, response)``."""
    cid = connection_id or new_connection_id()
    return cid, post_as_gateway(path, cid, route="connect", query=query, **kwargs)


def run_pytest_with_settings(settings_module, tests_dir, db_suffix):
    """Run ``tests_dir`` in a pytest subprocess under ``settings_module`` (a project with other
    apps or another user model) and assert that every test passed, none skipped. On PostgreSQL
    it gets a test database of its own (``<this run's>_<db_suffix>``)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if env.get("TEST_DB") == "postgres":  # not the database of this run (Django's default name)
        env["PG_TEST_NAME"] = (env.get("PG_TEST_NAME") or "test_postgres") + f"_{db_suffix}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--ds",
            settings_module,
            str(root / tests_dir),
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout


def break_connect_statement(monkeypatch, failing_expression):
    """Make the one-statement connect's SQL fail at run time: ``failing_expression`` is selected
    before the connection's id (e.g. a column that does not exist, or ``1 / 0``)."""
    from django_aws_api_gateway_websockets.db import connect as connect_sql

    real = connect_sql.statement

    def broken(conn, audit, n_keys, *more):
        sql = real(conn, audit, n_keys, *more)
        assert ", conn." in sql
        return sql.replace(", conn.", f", {failing_expression}, conn.", 1)

    monkeypatch.setattr(connect_sql, "statement", broken)


def perm(codename):
    """The ``auth.Permission`` named ``app_label.codename``."""
    app_label, name = codename.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=name)


def channel(name, access, *rules):
    """A ``ChannelPermission`` with one rule per set of permission codenames."""
    row = ChannelPermission.objects.create(channel_name=name, access=access)
    for codenames in rules:
        rule = ChannelPermissionRule.objects.create(channel_permission=row)
        rule.permissions.set([perm(c) for c in codenames])
    return row


@contextlib.contextmanager
def statements_on_the_wire(connection):
    """The statements Django's ``connection`` (PostgreSQL, psycopg 3) sends to the server inside
    the block, BEGIN and COMMIT included, read from the driver's protocol trace: Django's query
    log lists an atomic block's BEGIN and COMMIT even when, the block running no statement, the
    driver sends neither. Yields a list filled when the block ends."""
    connection.ensure_connection()
    sent: list[str] = []
    with tempfile.TemporaryFile("w+") as trace:
        pgconn = connection.connection.pgconn
        pgconn.trace(trace.fileno())
        try:
            yield sent
        finally:
            pgconn.untrace()
            trace.seek(0)
            for line in trace:
                # "<time>\tF\t<length>\tQuery\t <sql>": a statement the client (F) sent
                fields = line.rstrip("\n").split("\t")
                if len(fields) > 4 and fields[1] == "F" and fields[3] in ("Query", "Parse"):
                    sent.append(fields[4].strip().strip('"'))


def wait_for(predicate, timeout=5.0):
    """Whether ``predicate()`` came true within ``timeout`` seconds (polled every 20 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def run_node_tests(test_file, at_least):
    """Run ``test_file`` (``node --test``) against the installed package's websocket-client.js
    (nox tests the wheel, without a source tree); assert it passed ``at_least`` tests, none failed."""
    import os
    import re
    import subprocess
    from pathlib import Path

    import django_aws_api_gateway_websockets

    client_js = (
        Path(django_aws_api_gateway_websockets.__file__).parent
        / "static"
        / "django_aws_api_gateway_websockets"
        / "websocket-client.js"
    )
    done = subprocess.run(
        ["node", "--disable-warning=MODULE_TYPELESS_PACKAGE_JSON", "--test", "--test-reporter=spec", str(test_file)],
        env={**os.environ, "CLIENT_JS": client_js.as_uri(), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    passed = re.search(r"\bpass (\d+)", report)
    assert passed and int(passed.group(1)) >= at_least, report
    assert re.search(r"\bfail 0\b", report), report
