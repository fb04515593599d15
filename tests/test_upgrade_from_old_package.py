"""`upgradeFromOldPackage`: a database the old package (4.x) migrated, moved to this schema."""

import json
from datetime import datetime, timezone
from io import StringIO

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection
from django.db.migrations.recorder import MigrationRecorder

from django_aws_api_gateway_websockets import legacy
from django_aws_api_gateway_websockets.models import (
    ApiGateway,
    ApiGatewayAdditionalRoute,
    ConnectionRateLimit,
    WebSocketSession,
    WebSocketToken,
)

from .old_package_schema import (
    OLD_MIGRATIONS,
    OLD_MODELS,
    OldAdditionalRoute,
    OldApiGateway,
    OldConnectionRateLimit,
    OldWebSocketSession,
    OldWebSocketToken,
)

pytestmark = pytest.mark.django_db(transaction=True)

APP = legacy.APP_LABEL
CREATED = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
UPDATED = datetime(2025, 3, 2, 8, 30, tzinfo=timezone.utc)


def history():
    return sorted(MigrationRecorder.Migration.objects.filter(app=APP).values_list("name", flat=True))


@pytest.fixture
def old_database(django_user_model):
    """This package's tables swapped for the old package's, with rows and migration history."""
    alice = django_user_model.objects.create_user("alice", password="pw")
    legacy.drop_tables("default")
    with connection.schema_editor() as editor:
        for model in OLD_MODELS:
            editor.create_model(model)
    MigrationRecorder.Migration.objects.filter(app=APP).delete()
    MigrationRecorder.Migration.objects.bulk_create(MigrationRecorder.Migration(app=APP, name=n) for n in OLD_MIGRATIONS)
    stamps = {"created_on": CREATED, "updated_on": UPDATED}
    OldApiGateway.objects.create(
        id=7, api_name="chat", target_base_endpoint="https://www.example.com/ws/", api_id="abc123",
        deployment_id="dep1", api_created=True, tags={"team": "web"}, default_channel_name="lobby", **stamps,
    )
    OldAdditionalRoute.objects.create(
        id=3, api_gateway_id=7, name="Typing", route_key="typing", integration_url="https://www.example.com/ws/typing",
        deployed=True, **stamps,
    )
    OldWebSocketSession.objects.create(
        id=10, connection_id="conn-A=", channel_name="lobby", user_id=alice.pk, api_gateway_id=7, request_count=5, **stamps
    )
    OldWebSocketSession.objects.create(id=11, connection_id="conn-B=", connected=False, api_gateway_id=7, **stamps)
    OldWebSocketToken.objects.create(token="a" * 64, user_id=alice.pk, session_key="s1", created_at=CREATED)
    OldConnectionRateLimit.objects.create(ip_address="203.0.113.5", user_id=alice.pk, attempt_time=CREATED, successful=True)
    OldConnectionRateLimit.objects.create(ip_address="2001:db8::1", attempt_time=UPDATED)
    yield alice
    # Whatever the test did, the next one gets this package's schema back.
    legacy.drop_tables("default")
    MigrationRecorder.Migration.objects.filter(app=APP).delete()
    call_command("migrate", APP, verbosity=0)


def test_upgrade_keeps_every_record_session_and_attempt(old_database, tmp_path):
    alice = old_database
    assert "aws_websockets.E038" in {m.id for m in checks.run_checks(databases=["default"])}
    fixture = tmp_path / "upgrade.json"
    out = StringIO()
    call_command("upgradeFromOldPackage", fixture=str(fixture), stdout=out)

    gateway = ApiGateway.objects.get(pk=7)
    assert (gateway.api_name, gateway.api_id, gateway.deployment_id, gateway.tags) == ("chat", "abc123", "dep1", {"team": "web"})
    assert gateway.api_created and gateway.default_channel_name == "lobby"
    assert (gateway.created_on, gateway.updated_on) == (CREATED, UPDATED)  # not reset by auto_now
    # No secret until syncApiGateway --rotate-secret: the deployed API does not send one yet.
    assert gateway.integration_secret == "" and gateway.region == "" and gateway.management_endpoint_url == ""

    route = ApiGatewayAdditionalRoute.objects.get(pk=3)
    assert (route.api_gateway_id, route.route_key, route.deployed, route.two_way) == (7, "typing", True, False)

    sessions = {s.connection_id: s for s in WebSocketSession.objects.all()}
    assert sessions["conn-A="].user == alice and sessions["conn-A="].request_count == 5
    assert sessions["conn-A="].channel_name == "lobby" and sessions["conn-A="].created_on == CREATED
    assert sessions["conn-B="].connected is False and sessions["conn-B="].user is None
    assert list(WebSocketSession.objects.connected().values_list("pk", flat=True)) == [10]

    attempts = ConnectionRateLimit.objects.order_by("attempt_time")
    assert [(a.ip_address, a.user_id, a.successful, a.reason) for a in attempts] == [
        ("203.0.113.5", alice.pk, True, ""),
        ("2001:db8::1", None, False, ""),
    ]
    assert WebSocketToken.objects.count() == 0  # stored in clear by the old package: not carried

    assert history() == sorted(legacy.own_migration_names())
    assert "aws_websockets.E038" not in {m.id for m in checks.run_checks(databases=["default"])}
    # Sequences follow the copied ids (PostgreSQL): new rows do not collide.
    assert ApiGateway.objects.create(api_name="new").pk != 7

    saved = json.loads(fixture.read_text())
    assert sorted(obj["model"] for obj in saved) == sorted(
        [f"{APP}.apigateway", f"{APP}.apigatewayadditionalroute"] + [f"{APP}.websocketsession"] * 2
        + [f"{APP}.connectionratelimit"] * 2
    )
    output = out.getvalue()
    assert "1/4 wrote 6 row(s)" in output and "1 old token(s) not carried" in output
    assert "syncApiGateway --pk N --rotate-secret" in output


def test_dry_run_changes_nothing(old_database, tmp_path):
    out = StringIO()
    call_command("upgradeFromOldPackage", "--dry-run", stdout=out)
    output = out.getvalue()
    assert "0009_default_table_names" in output
    assert f"would copy 2 {APP}.WebSocketSession row(s)" in output
    assert f"would drop 1 {APP}.WebSocketToken row(s)" in output
    assert history() == OLD_MIGRATIONS
    assert OldWebSocketSession.objects.count() == 2


def test_refuses_a_database_the_old_package_did_not_finish_migrating(old_database):
    MigrationRecorder.Migration.objects.filter(app=APP, name="0009_default_table_names").delete()
    with pytest.raises(CommandError, match="last 4.x release"):
        call_command("upgradeFromOldPackage")
    assert OldApiGateway.objects.count() == 1


def test_refuses_a_database_with_this_package_schema():
    with pytest.raises(CommandError, match="nothing to upgrade"):
        call_command("upgradeFromOldPackage")


def test_a_failure_after_the_drop_loses_nothing(old_database, tmp_path, monkeypatch):
    fixture = tmp_path / "upgrade.json"
    real_call_command = legacy.call_command

    def loaddata_fails(name, *args, **kwargs):
        if name == "loaddata":
            raise DatabaseError("disk full")
        return real_call_command(name, *args, **kwargs)

    monkeypatch.setattr(legacy, "call_command", loaddata_fails)
    with pytest.raises(CommandError, match=f"The rows are saved in {fixture}"):
        call_command("upgradeFromOldPackage", fixture=str(fixture), stdout=StringIO())
    assert WebSocketSession.objects.count() == 0  # the new, empty schema
    # What the message says to do brings everything back.
    call_command("loaddata", str(fixture), verbosity=0)
    assert sorted(WebSocketSession.objects.values_list("connection_id", flat=True)) == ["conn-A=", "conn-B="]
    assert ApiGateway.objects.get(pk=7).api_id == "abc123"


def test_never_overwrites_an_earlier_fixture(old_database, tmp_path):
    fixture = tmp_path / "upgrade.json"
    fixture.write_text("[]")
    with pytest.raises(CommandError, match="exists"):
        call_command("upgradeFromOldPackage", fixture=str(fixture))
    assert fixture.read_text() == "[]" and history() == OLD_MIGRATIONS


def test_a_failure_while_saving_changes_nothing_and_leaves_no_half_file(old_database, tmp_path, monkeypatch):
    fixture = tmp_path / "upgrade.json"

    def disk_full(*args, stream, **kwargs):
        stream.write("[{")
        raise OSError("No space left on device")

    monkeypatch.setattr(legacy.serializers, "serialize", disk_full)
    with pytest.raises(CommandError, match="before anything was changed"):
        call_command("upgradeFromOldPackage", fixture=str(fixture))
    assert not fixture.exists()
    assert history() == OLD_MIGRATIONS and OldWebSocketSession.objects.count() == 2
