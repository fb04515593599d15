"""The database layer (django_aws_api_gateway_websockets/db/): what the database can do comes
from Django's feature flags, every statement is cached once per database alias, and rows of
hand-written SQL are read by column name (issue #24, part 2)."""

import ast
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import django_aws_api_gateway_websockets as package
from django_aws_api_gateway_websockets import history, tokens
from django_aws_api_gateway_websockets.db import features, statements
from django_aws_api_gateway_websockets.db import tokens as token_sql
from django_aws_api_gateway_websockets.history_models import ChannelSequence

ROOT = Path(package.__file__).resolve().parent


@pytest.fixture
def no_upsert(monkeypatch):
    """A database without ``ON CONFLICT (target) DO UPDATE`` as Django reports it (MySQL,
    MariaDB, Oracle): Django's own inserts are unaffected by the flag."""
    monkeypatch.setattr(connection.features, "supports_update_conflicts_with_target", False)
    statements.clear()
    yield
    statements.clear()


def test_the_features_are_django_s_flags(no_upsert):
    assert not features.returning_upserts(connection)
    assert not features.writes_in_with(connection)


@pytest.mark.django_db
def test_without_returning_the_token_is_found_then_spent_by_the_orm(no_upsert, client, user):
    client.force_login(user)
    raw = tokens.issue_token(user, client.session.session_key)
    with CaptureQueriesContext(connection) as context:
        token = tokens.spend_token(raw, client.session.session_key)
    assert token is not None and token.user == user
    sql = [q["sql"] for q in context.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert not any("RETURNING" in q for q in sql), sql
    assert tokens.spend_token(raw, client.session.session_key) is None  # spent once


@pytest.mark.django_db
def test_without_returning_the_stream_counts_up_by_the_orm(no_upsert):
    with CaptureQueriesContext(connection) as context:
        assert [history.next_seq("s"), history.next_seq("s")] == [1, 2]
    assert not any("RETURNING" in q["sql"] for q in context.captured_queries)
    assert ChannelSequence.objects.get(stream="s").last_seq == 2


@pytest.mark.django_db
def test_a_statement_is_built_once_per_alias(user):
    statements.clear()
    built = []

    def build(conn):
        built.append(conn.alias)
        return "SELECT 1"

    assert statements.statement(connection, "probe", build) == "SELECT 1"
    assert statements.statement(connection, "probe", build) == "SELECT 1"
    assert built == [connection.alias]
    assert statements.for_alias("elsewhere") == {}  # another alias has its own cache


@pytest.mark.django_db
def test_the_spend_is_read_by_column_name(client, user):
    if not token_sql.one_statement_spend(connection):
        pytest.skip("no UPDATE … RETURNING on this database")
    spend = token_sql.spend_statement(connection, True)
    for name in (token_sql.TOKEN_ID, token_sql.TOKEN_USER_ID, token_sql.TOKEN_SESSION_KEY, token_sql.TOKEN_LOGIN_HASH):
        assert f" AS {connection.ops.quote_name(name)}" in spend.sql
    client.force_login(user)
    raw = tokens.issue_token(user, client.session.session_key, login_id="the-login")
    token = tokens.spend_token(raw, client.session.session_key)
    assert (token.user_id, token.user.username) == (user.pk, user.username)
    assert token.login_hash  # the token's own column, by name


def test_no_module_reads_a_driver_version_or_keeps_its_own_statement_cache():
    offenders = []
    for path in ROOT.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        text = path.read_text()
        if "sqlite_version_info" in text:
            offenders.append(f"{path.name}: sqlite_version_info")
        for node in ast.parse(text).body:  # module-level dict caches of SQL
            target = node.target if isinstance(node, ast.AnnAssign) else None
            if isinstance(target, ast.Name) and target.id.endswith("_SQL"):
                offenders.append(f"{path.name}: {target.id}")
    assert offenders == []


def test_the_cookie_session_read_is_what_session_store_load_finds(client, user):
    """db/django_sessions: a token connect's plain read of a database session gives the data
    Django's own load gives; an expired or missing session gives no key and no data, as
    ``SessionStore.load`` does; the store itself is not loaded (code that reads
    ``request.session`` later loads it as usual)."""
    from datetime import timedelta

    from django.contrib.sessions.backends.cache import SessionStore as CacheStore
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    from django_aws_api_gateway_websockets.db import django_sessions

    client.force_login(user)
    key = client.session.session_key
    store = SessionStore(key)
    snapshot = django_sessions.snapshot(store)
    assert snapshot.session_key == key
    assert dict(snapshot) == dict(SessionStore(key).load())
    assert not store.accessed and not hasattr(store, "_session_cache")

    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    expired = django_sessions.snapshot(SessionStore(key))
    assert expired.session_key is None and dict(expired) == {} == SessionStore(key).load()
    assert django_sessions.snapshot(SessionStore("no-such-session-key-000000000000")).session_key is None

    other_engine = CacheStore()
    assert django_sessions.snapshot(other_engine) is other_engine  # loaded as Django does
