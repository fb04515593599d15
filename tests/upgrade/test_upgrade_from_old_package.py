"""`upgradeFromOldPackage` on databases the REAL old releases (4.0.0, 4.1.0) migrated and seeded.

The databases come from tests/upgrade/legacy_wheels (the old wheels run in their own virtualenv, on
the backend of this run: SQLite, or PostgreSQL with TEST_DB=postgres) under their own alias;
the command upgrades that alias. Afterwards the whole old project lives on that alias (its
users, Django sessions and our tables), so requests and channel checks are made against it
through a router that sends every model there.
"""

import hashlib
import json
import os
import stat
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connections
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client, override_settings
from django.utils import timezone

from django_aws_api_gateway_websockets import login, tokens
from django_aws_api_gateway_websockets.gateway_lookup import clear_gateway_cache
from django_aws_api_gateway_websockets.models import (
    ApiGateway,
    ApiGatewayAdditionalRoute,
    ChannelPermission,
    ChannelPermissionRule,
    ConnectionRateLimit,
    Subscription,
    WebSocketSession,
    WebSocketToken,
)
from django_aws_api_gateway_websockets.upgrade import apply as upgrade_apply
from django_aws_api_gateway_websockets.upgrade import detect

from .legacy_wheels.fixtures import legacy_wheels, old_database_40, old_database_41  # noqa: F401

pytestmark = [legacy_wheels, pytest.mark.django_db(transaction=True)]

APP = detect.APP_LABEL
OLD_HEADER = "X-Ws-Gateway-Secret"


def history(alias):
    return sorted(MigrationRecorder(connections[alias]).migration_qs.filter(app=APP).values_list("name", flat=True))


def app_tables(alias):
    return {t for t in connections[alias].introspection.table_names() if t.startswith(APP + "_")}


def jsonable(value):
    """As tests/upgrade/legacy_wheels/seed_old.py writes raw values into the manifest."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def raw_rows(alias, table):
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)} ORDER BY 1")
        columns = [c[0] for c in cursor.description]
        return {row[0]: dict(zip(columns, map(jsonable, row), strict=False)) for row in cursor.fetchall()}


def websockets_setting(old):
    """The project's WEBSOCKETS as the old project had it (4.1.0: with gateway_secret)."""
    return dict(old.manifest["websockets_setting"])


def upgrade(old, tmp_path, *args, websockets=None, name="upgrade.json"):
    fixture = tmp_path / name
    out = StringIO()
    with override_settings(WEBSOCKETS=websockets_setting(old) if websockets is None else websockets):
        call_command("upgrade_from_old_package", *args, database=old.alias, fixture=str(fixture), stdout=out)
    return out.getvalue(), fixture


def dry_run(old, websockets=None):
    out = StringIO()
    with override_settings(WEBSOCKETS=websockets_setting(old) if websockets is None else websockets):
        call_command("upgradeFromOldPackage", "--dry-run", database=old.alias, stdout=out)
    return out.getvalue()


class _Everything:
    """A router sending every model to one alias: the upgraded old project, as it runs."""

    def __init__(self, alias):
        self.alias = alias

    def db_for_read(self, model, **hints):
        return self.alias

    db_for_write = db_for_read


@pytest.fixture
def served_from():
    """``with served_from(alias):`` every query goes to the upgraded database."""

    def serve(alias):
        clear_gateway_cache()
        try:  # the channel rules' per-process copy (channel_access.py)
            from django_aws_api_gateway_websockets.channel_access import clear_channel_rules_cache
        except ImportError:
            pass
        else:
            clear_channel_rules_cache()
        return override_settings(DATABASE_ROUTERS=[_Everything(alias)])

    yield serve
    clear_gateway_cache()


def assert_every_old_row_kept(old, *, hashed_token_session_keys):
    """Every old row is in the upgraded table under its pk, with every column's value (the
    token's own value as its SHA-256; 4.0.0's raw session keys as their keyed hash)."""
    alias = old.alias
    tables = app_tables(alias)
    rule_table = ChannelPermissionRule._meta.db_table
    for table, seeded in old.manifest["tables"].items():
        if table.startswith(rule_table + "_"):
            continue  # the M2M table: its own ids are not data; pairs are compared by test
        assert table in tables, table
        now = raw_rows(alias, table)
        assert sorted(now) == [row["id"] for row in seeded["rows"]], table
        for row in seeded["rows"]:
            current = now[row["id"]]
            for column, value in row.items():
                if table.endswith("_websockettoken") and column == "token":
                    value = hashlib.sha256(value.encode()).hexdigest()
                elif table.endswith("_websockettoken") and column == "session_key" and hashed_token_session_keys:
                    value = login.hash_session_key(value)
                elif column == "tags":
                    value, current[column] = json.loads(value), json.loads(current[column])
                assert current[column] == value, (table, row["id"], column)


def rule_labels(alias):
    """{(channel, rule id): sorted "app_label.codename"} on the upgraded database."""
    return {
        (rule.channel_permission.channel_name, rule.pk): sorted(
            f"{p.content_type.app_label}.{p.codename}" for p in rule.permissions.all()
        )
        for rule in ChannelPermissionRule.objects.using(alias).select_related("channel_permission")
    }


# --- 4.1.0 ---------------------------------------------------------------------------------


def assert_channels_kept_as_subscriptions(alias, manifest):
    """Issue #25: each upgraded connection holds its 4.x channel as a subscription (none for
    a connection without one), and the 4.x queryset API still finds it."""
    held = {}
    for pk, channel in Subscription.objects.using(alias).values_list("connection_id", "channel"):
        held.setdefault(pk, []).append(channel)
    assert held == {s["id"]: [s["channel_name"]] for s in manifest["sessions"] if s["channel_name"]}
    assert any(not s["channel_name"] for s in manifest["sessions"])  # the seed has one without
    for seeded in manifest["sessions"]:
        if seeded["channel_name"]:
            found = WebSocketSession.objects.using(alias).in_channel(seeded["channel_name"])
            assert found.filter(pk=seeded["id"]).exists()


def test_41_upgrade_keeps_every_row_rule_and_hash(old_database_41, tmp_path):
    old, alias, manifest = old_database_41, old_database_41.alias, old_database_41.manifest
    assert "aws_websockets.E038" in {m.id for m in checks.run_checks(databases=[alias])}
    before = timezone.now()
    output, fixture = upgrade(old, tmp_path)

    assert "found 4.1.0" in output
    assert_every_old_row_kept(old, hashed_token_session_keys=False)
    # channel permissions: every channel, rule and (rule, permission) pair, by app label + codename
    expected = {
        (channel["channel_name"], rule["id"]): rule["permissions"]
        for channel in manifest["channel_permissions"]
        for rule in channel["rules"]
    }
    assert rule_labels(alias) == expected
    assert {c.channel_name: c.access for c in ChannelPermission.objects.using(alias)} == {
        c["channel_name"]: c["access"] for c in manifest["channel_permissions"]
    }
    # provisioning state and AWS ids as 4.1.0 left them; 'creating' named in the output
    gateways = {g.pk: g for g in ApiGateway.objects.using(alias)}
    for seeded in manifest["gateways"]:
        record = gateways[seeded["id"]]
        assert (record.provisioning_status, record.last_error) == (seeded["provisioning_status"], seeded["last_error"])
    half_built = next(g for g in manifest["gateways"] if g["provisioning_status"] == "creating")
    assert f"Record {half_built['id']} ('{half_built['api_name']}') was left 'creating'" in output
    routes = {r.pk: (r.route_id, r.integration_id) for r in ApiGatewayAdditionalRoute.objects.using(alias)}
    assert routes == {r["id"]: (r["route_id"], r["integration_id"]) for r in manifest["routes"]}
    # sessions keep the login that opened them (same salts, same SECRET_KEY)
    sessions = {s.pk: s for s in WebSocketSession.objects.using(alias)}
    for seeded in manifest["sessions"]:
        assert sessions[seeded["id"]].session_key_hash == seeded["session_key_hash"]
        assert sessions[seeded["id"]].auth_hash == seeded["auth_hash"]
    assert_channels_kept_as_subscriptions(alias, manifest)
    alice_session = next(s for s in manifest["sessions"] if s["user_id"] == manifest["users"]["alice"]["id"])
    assert alice_session["session_key_hash"] == login.hash_session_key(manifest["session_keys"]["alice"])
    assert sessions[alice_session["id"]].auth_hash == login.auth_hash(
        get_user_model().objects.using(alias).get(pk=alice_session["user_id"])
    )

    # the secret the deployed integrations send, the second accepted for the grace period
    first, second = manifest["websockets_setting"]["gateway_secret"]
    for record in gateways.values():
        assert (record.integration_secret, record.previous_integration_secret) == (first, second)
        assert before <= record.secret_rotated_at <= timezone.now()
        assert record.accepts_legacy_secret_header is True
    assert first not in output and second not in output
    assert "sync_api_gateway --pk N" in output and "X-Ws-Gateway-Secret" in output

    # the old schema is gone: our tables only (the M2M under this backend's name), our history
    through = ChannelPermissionRule.permissions.through._meta.db_table
    assert app_tables(alias) == {m._meta.db_table for m in detect.DROP_ORDER} | {through}
    assert history(alias) == sorted(detect.own_migration_names())
    assert "aws_websockets.E038" not in {m.id for m in checks.run_checks(databases=[alias])}
    # sequences follow the copied ids (PostgreSQL)
    new = ApiGateway.objects.using(alias).create(api_name="new one")
    assert new.pk not in gateways
    assert ChannelPermission.objects.using(alias).create(channel_name="new-channel").pk > 5
    # the fixture holds the secrets: its owner only may read it
    assert stat.S_IMODE(os.stat(fixture).st_mode) == 0o600


def test_41_old_deployment_keeps_working_and_forgeries_are_refused(old_database_41, tmp_path, served_from):
    old, alias, manifest = old_database_41, old_database_41.alias, old_database_41.manifest
    upgrade(old, tmp_path)
    first, second = manifest["websockets_setting"]["gateway_secret"]
    chat = next(g for g in manifest["gateways"] if g["api_name"] == "chat")
    alice_session = next(
        s for s in manifest["sessions"] if s["user_id"] == manifest["users"]["alice"]["id"] and s["connected"]
    )
    body = json.dumps({"action": "whoami"})

    def message(**secret_headers):
        headers = {
            "X-Amzn-Apigateway-Api-Id": chat["api_id"],
            "connectionId": alice_session["connection_id"],
            "User-Agent": f"AmazonAPIGateway_{chat['api_id']}",
            "X-Source-Ip": "203.0.113.9",
            **secret_headers,
        }
        return Client().post("/ws/default", data=body, content_type="application/json", headers=headers)

    with served_from(alias), override_settings(WEBSOCKETS=websockets_setting(old)):
        # what the 4.1.0 integrations send until sync_api_gateway re-syncs them
        accepted = message(**{OLD_HEADER: first})
        assert accepted.status_code == 200, accepted.content
        assert accepted.json() == {"type": "whoami", "user": "alice"}  # the session and its login carried
        assert message(**{OLD_HEADER: second}).status_code == 200  # the older secret, in its grace period
        assert message(**{"X-Gateway-Secret": first}).status_code == 200  # after the re-sync
        # forgeries
        assert message().status_code == 403
        assert message(**{OLD_HEADER: "not-the-secret-0123456789abcdefghijkl"}).status_code == 403
        assert message(**{"X-Gateway-Secret": "wrong", OLD_HEADER: first}).status_code == 403
        # the previous secret stops at the end of the grace period
        ApiGateway.objects.filter(pk=chat["id"]).update(secret_rotated_at=timezone.now() - timedelta(days=2))
        assert message(**{OLD_HEADER: second}).status_code == 403
        assert message(**{OLD_HEADER: first}).status_code == 200


def test_41_channel_rules_refuse_whom_they_refused(old_database_41, tmp_path, served_from):
    from django_aws_api_gateway_websockets.channel_access import may_join

    old, alias, manifest = old_database_41, old_database_41.alias, old_database_41.manifest
    decisions = manifest["channel_decisions"]  # the old package's own ChannelPermission.allows
    assert {d for per_user in decisions.values() for d in per_user.values()} == {True, False, None}
    upgrade(old, tmp_path)
    User = get_user_model()
    with served_from(alias):
        for who, per_channel in decisions.items():
            user = AnonymousUser() if who == "anonymous" else User.objects.get(pk=manifest["users"][who]["id"])
            for channel, allowed in per_channel.items():
                if allowed is None:  # no row: the view's ALLOW_UNLISTED_CHANNELS decides, as before
                    assert may_join(user, channel) is True and may_join(user, channel, allow_unlisted=False) is False
                else:
                    assert may_join(user, channel) is allowed, (who, channel)


def test_41_tokens_issued_before_still_work_once(old_database_41, tmp_path, served_from):
    old, alias, manifest = old_database_41, old_database_41.alias, old_database_41.manifest
    upgrade(old, tmp_path)
    fresh, spent, _stale = manifest["tokens"]
    with served_from(alias):
        ages = 10**9  # the seeded rows may be days old (a cached database)
        wrong_session = tokens.consume_token(fresh["token"], manifest["session_keys"]["bob"], ages)
        assert wrong_session is None
        token = tokens.consume_token(fresh["token"], manifest["session_keys"][fresh["user"]], ages)
        assert token is not None and token.user_id == manifest["users"][fresh["user"]]["id"]
        assert tokens.consume_token(fresh["token"], manifest["session_keys"][fresh["user"]], ages) is None
        assert tokens.consume_token(spent["token"], manifest["session_keys"][spent["user"]], ages) is None


def test_41_without_gateway_secret_records_get_none(old_database_41, tmp_path):
    output, _ = upgrade(old_database_41, tmp_path, websockets={})
    for record in ApiGateway.objects.using(old_database_41.alias):
        assert (record.integration_secret, record.previous_integration_secret) == ("", "")
        assert record.secret_rotated_at is None and record.accepts_legacy_secret_header is False
    assert "--rotate-secret" in output


def test_41_single_gateway_secret_has_no_previous(old_database_41, tmp_path):
    first = old_database_41.manifest["websockets_setting"]["gateway_secret"][0]
    upgrade(old_database_41, tmp_path, websockets={"gateway_secret": first})
    record = ApiGateway.objects.using(old_database_41.alias).first()
    assert (record.integration_secret, record.previous_integration_secret, record.secret_rotated_at) == (
        first,
        "",
        None,
    )
    assert record.accepts_legacy_secret_header


def test_41_dry_run_reports_and_changes_nothing(old_database_41):
    old, alias, manifest = old_database_41, old_database_41.alias, old_database_41.manifest
    tables = app_tables(alias)
    output = dry_run(old)
    assert "Found the old package 4.1.0" in output
    assert "0015_alter_apigateway_provisioning_status" in output
    for label, model in (
        ("ChannelPermission", ChannelPermission),
        ("WebSocketToken", WebSocketToken),
        ("ConnectionRateLimit", ConnectionRateLimit),
    ):
        count = manifest["tables"][model._meta.db_table]["count"]
        assert f"would copy {count} {APP}.{label} row(s)" in output
    assert "would copy 3 channel rule <-> permission pair(s)" in output
    assert "'half built') was left 'creating'" in output
    assert "Everything is carried over." in output
    for secret in manifest["websockets_setting"]["gateway_secret"]:
        assert secret not in output
    assert history(alias) == sorted(manifest["migrations"]) and app_tables(alias) == tables


def test_41_what_cannot_be_carried_is_named_and_needs_the_flag(old_database_41, tmp_path):
    old, alias = old_database_41, old_database_41.alias
    connection = connections[alias]
    table = ApiGateway._meta.db_table
    with connection.cursor() as cursor:  # what a project may have added by hand
        cursor.execute(f"ALTER TABLE {table} ADD COLUMN colour varchar(16) NULL")
        cursor.execute(f"UPDATE {table} SET colour = 'blue' WHERE id = 1")
        cursor.execute(f"CREATE TABLE {APP}_notes (id integer PRIMARY KEY, body text)")
        cursor.execute(f"INSERT INTO {APP}_notes VALUES (1, 'a'), (2, 'b')")
    secrets = [*old.manifest["websockets_setting"]["gateway_secret"], "third-secret-0123456789abcdefghijklmno"]
    websockets = {"gateway_secret": secrets}

    output = dry_run(old, websockets)
    assert "refuses to run without --discard-uncarried" in output
    assert f"column {table}.colour: 1" in output
    assert f"table {APP}_notes: 2" in output and "left in place" in output
    assert 'WEBSOCKETS["gateway_secret"] entries after the second: 1' in output

    with pytest.raises(CommandError, match="--discard-uncarried") as refused:
        upgrade(old, tmp_path, websockets=websockets)
    assert "colour" in str(refused.value)
    assert not (tmp_path / "upgrade.json").exists() and history(alias) == sorted(old.manifest["migrations"])

    output, _ = upgrade(old, tmp_path, "--discard-uncarried", websockets=websockets)
    assert f"not carried: column {table}.colour: 1" in output
    assert ApiGateway.objects.using(alias).get(pk=1).integration_secret == secrets[0]
    assert f"{APP}_notes" in app_tables(alias)  # not ours: left as it was


def test_refuses_partial_and_unknown_histories(old_database_41):
    old, alias = old_database_41, old_database_41.alias
    migrations = MigrationRecorder(connections[alias]).migration_qs
    migrations.filter(app=APP, name__startswith="0015").delete()
    with pytest.raises(CommandError, match=r"stops at the old package's migration 0014.*install 4.1.0"):
        dry_run(old)
    migrations.filter(app=APP, name__gte="0009").delete()
    with pytest.raises(CommandError, match=r"stops at .* 0008.*last 4.x release"):
        dry_run(old)
    migrations.create(app=APP, name="0009_alter_connectionratelimit_table_and_more")
    migrations.create(app=APP, name="0010_someone_elses_fork")
    with pytest.raises(CommandError, match=r"unknown migration history.*0010_someone_elses_fork"):
        dry_run(old)
    assert ApiGateway.objects.using(alias).count() == len(old.manifest["gateways"])


def test_refuses_a_database_with_this_package_schema():
    with pytest.raises(CommandError, match="nothing to upgrade"):
        call_command("upgradeFromOldPackage")


def test_an_unknown_database_alias_is_a_clear_error():
    with pytest.raises(CommandError, match=r"No database 'nosuch' in DATABASES \(configured: default\)"):
        call_command("upgradeFromOldPackage", database="nosuch")


def test_41_a_failure_after_the_drop_loses_nothing(old_database_41, tmp_path, monkeypatch):
    old, alias = old_database_41, old_database_41.alias
    real_call_command = upgrade_apply.call_command

    def loaddata_fails(name, *args, **kwargs):
        if name == "loaddata":
            raise DatabaseError("disk full")
        return real_call_command(name, *args, **kwargs)

    monkeypatch.setattr(upgrade_apply, "call_command", loaddata_fails)
    fixture = tmp_path / "upgrade.json"
    with pytest.raises(CommandError, match=f"The rows are saved in {fixture}"):
        upgrade(old, tmp_path)
    assert WebSocketSession.objects.using(alias).count() == 0  # the new, empty schema
    # What the message says to do brings everything back, rules and secrets included.
    call_command("loaddata", str(fixture), database=alias, verbosity=0)
    assert_every_old_row_kept(old, hashed_token_session_keys=False)
    assert len(rule_labels(alias)) == 3
    first = old.manifest["websockets_setting"]["gateway_secret"][0]
    assert {g.integration_secret for g in ApiGateway.objects.using(alias)} == {first}


def test_never_overwrites_an_earlier_fixture(old_database_41, tmp_path):
    fixture = tmp_path / "upgrade.json"
    fixture.write_text("[]")
    with pytest.raises(CommandError, match="exists"):
        upgrade(old_database_41, tmp_path)
    assert fixture.read_text() == "[]" and history(old_database_41.alias) == sorted(
        old_database_41.manifest["migrations"]
    )


def test_a_failure_while_saving_changes_nothing_and_leaves_no_half_file(old_database_41, tmp_path, monkeypatch):
    def disk_full(entries, stream, **kwargs):
        stream.write("[{")
        raise OSError("No space left on device")

    monkeypatch.setattr(upgrade_apply.json, "dump", disk_full)
    with pytest.raises(CommandError, match="before anything was changed"):
        upgrade(old_database_41, tmp_path)
    assert not (tmp_path / "upgrade.json").exists()
    assert history(old_database_41.alias) == sorted(old_database_41.manifest["migrations"])
    assert app_tables(old_database_41.alias) == set(old_database_41.manifest["tables"])


# --- 4.0.0 ---------------------------------------------------------------------------------


def test_40_upgrade_keeps_every_row_and_its_tokens(old_database_40, tmp_path, served_from):
    old, alias, manifest = old_database_40, old_database_40.alias, old_database_40.manifest
    assert "aws_websockets.E038" in {m.id for m in checks.run_checks(databases=[alias])}
    output, _ = upgrade(old, tmp_path)
    assert "found 4.0.x" in output and "--rotate-secret" in output and "'creating'" not in output
    assert_every_old_row_kept(old, hashed_token_session_keys=True)
    assert_channels_kept_as_subscriptions(alias, manifest)
    for record in ApiGateway.objects.using(alias):
        assert record.integration_secret == "" and not record.accepts_legacy_secret_header
    # no status in 4.0: derived from the flags, as our migration 0003 does
    status = {g.api_name: g.provisioning_status for g in ApiGateway.objects.using(alias)}
    assert status == {
        "chat": "deployed",
        "notifications": "mapped",
        "half built": "pending",
        "routes-failed": "pending",
    }
    assert ChannelPermission.objects.using(alias).count() == 0
    assert history(alias) == sorted(detect.own_migration_names())
    assert "aws_websockets.E038" not in {m.id for m in checks.run_checks(databases=[alias])}
    fresh = manifest["tokens"][0]
    with served_from(alias):
        token = tokens.consume_token(fresh["token"], manifest["session_keys"][fresh["user"]], 10**9)
        assert token is not None and token.user_id == manifest["users"][fresh["user"]]["id"]


def test_40_dry_run(old_database_40):
    output = dry_run(old_database_40)
    assert "Found the old package 4.0.x" in output and "0009_alter_connectionratelimit_table_and_more" in output
    assert f"would copy 3 {APP}.WebSocketToken row(s)" in output and "session keys hashed" in output
    assert "Everything is carried over." in output
    assert history(old_database_40.alias) == sorted(old_database_40.manifest["migrations"])


def test_drop_order_names_every_model_of_the_app():
    # drop_tables (and the check of what is left after an upgrade) must know every table we make.
    from django.apps import apps

    assert set(detect.DROP_ORDER) == set(apps.get_app_config(APP).get_models())
