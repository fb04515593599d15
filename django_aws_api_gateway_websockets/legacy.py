"""The old package's schema (4.x, migrations 0001-0009): how to recognise it and move off it.

Both packages use the app label ``django_aws_api_gateway_websockets`` and the same table names,
and both have a migration called ``0001_initial``: on a database the old package migrated,
Django would take this package's tables as created. ``old_migrations`` finds that history (the
``aws_websockets.E038`` check stops ``migrate`` on it); ``upgrade`` carries the data across as
docs/upgrading.md describes, with a fixture file written before anything is dropped.

The old tables' columns are a subset of this package's (same names, same types), so the
current models read them by naming only those columns.
"""

import os

from django.core import serializers
from django.core.management import call_command
from django.db import DatabaseError, connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from .models import (
    ApiGateway,
    ApiGatewayAdditionalRoute,
    CleanupRun,
    ConnectionRateLimit,
    WebSocketSession,
    WebSocketToken,
)

APP_LABEL = ApiGateway._meta.app_label

# The old package's columns after its last migration (0009), per model, in copy order.
OLD_COLUMNS = {
    ApiGateway: (
        "id", "api_name", "api_description", "default_channel_name", "domain_name",
        "target_base_endpoint", "certificate_arn", "hosted_zone_id", "api_key_selection_expression",
        "route_selection_expression", "route_key", "stage_name", "stage_description", "deployment_id",
        "tags", "api_id", "api_endpoint", "api_gateway_domain_name", "api_mapping_id", "api_created",
        "custom_domain_created", "created_on", "updated_on",
    ),
    ApiGatewayAdditionalRoute: (
        "id", "api_gateway_id", "name", "route_key", "integration_url", "deployed", "created_on", "updated_on",
    ),
    WebSocketSession: (
        "id", "connection_id", "channel_name", "user_id", "connected", "api_gateway_id", "request_count",
        "created_on", "updated_on",
    ),
    ConnectionRateLimit: ("id", "ip_address", "user_id", "attempt_time", "successful"),
}
# Tokens are not carried: the old ones are stored in clear (ours are hashed) and live 60 s.
DROPPED = (WebSocketToken,)
# Every table of ours the old schema may hold, children first.
DROP_ORDER = (WebSocketSession, ApiGatewayAdditionalRoute, WebSocketToken, ConnectionRateLimit, ApiGateway, CleanupRun)


class UpgradeError(Exception):
    """The database is not in a state ``upgrade`` can start from; nothing was changed."""


class UpgradeStopped(Exception):
    """A step after the old tables were dropped failed; the rows are in ``fixture_path``."""

    def __init__(self, fixture_path, cause):
        super().__init__(
            f"Upgrade stopped: {cause}. The rows are saved in {fixture_path}: once the cause is fixed, "
            f"run `migrate` and `loaddata {fixture_path}` (docs/upgrading.md)."
        )
        self.fixture_path = fixture_path


def own_migration_names():
    """This app's migrations on disk (``MIGRATION_MODULES`` respected) and those they replace."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    ours = [migration for (app, _name), migration in loader.disk_migrations.items() if app == APP_LABEL]
    return {migration.name for migration in ours} | {
        name for migration in ours for app, name in migration.replaces if app == APP_LABEL
    }


def old_migrations(alias, ours=None):
    """Names of applied migrations of this app that this package does not have, sorted."""
    recorder = MigrationRecorder(connections[alias])
    if not recorder.has_table():
        return []
    ours = own_migration_names() if ours is None else ours
    applied = recorder.migration_qs.filter(app=APP_LABEL).values_list("name", flat=True)
    return sorted(set(applied) - ours)


def count_rows(alias, models):
    """``{model label: rows}`` in these models' tables on ``alias``."""
    return {model._meta.label: model.objects.using(alias).count() for model in models}


def check_upgradable(alias):
    """The old migrations applied on ``alias``; ``UpgradeError`` when ``upgrade`` cannot start."""
    old = old_migrations(alias)
    if not old:
        raise UpgradeError(f"Database '{alias}' has no migration history of the old package: nothing to upgrade.")
    if not any(name.startswith("0009") for name in old):
        raise UpgradeError(
            f"Database '{alias}' stops at the old package's migration {old[-1]}: install its last 4.x release "
            "and run migrate first, so the tables have the names and columns this upgrade reads."
        )
    return old


def read_old_rows(alias):
    """Instances of the current models holding the old tables' rows (new fields at defaults)."""
    rows = {}
    for model, columns in OLD_COLUMNS.items():
        values = model.objects.using(alias).order_by("pk").values(*columns)
        instances = [model(**row) for row in values]
        if model is ApiGateway:
            # No secret yet: the deployed API does not send one, and a record without a secret
            # is accepted (check W032 warns) until `syncApiGateway --rotate-secret` sets both.
            for record in instances:
                record.integration_secret = ""
        rows[model] = instances
    return rows


def drop_tables(alias):
    """Drop whichever of this app's tables exist on ``alias`` (old or new schema)."""
    connection = connections[alias]
    existing = set(connection.introspection.table_names())
    with connection.schema_editor() as editor:
        for model in DROP_ORDER:
            if model._meta.db_table in existing:
                editor.delete_model(model)


def write_fixture(instances, fixture_path):
    """Serialize ``instances`` to a new file; a half-written file is removed, an existing one kept."""
    with open(fixture_path, "x", encoding="utf-8") as fixture:  # never over an earlier save
        try:
            serializers.serialize("json", instances, stream=fixture, indent=1)
        except BaseException:
            fixture.close()
            os.remove(fixture_path)
            raise


def upgrade(alias, fixture_path, log=print):
    """Move the old schema's data to this package's schema on database ``alias``.

    1. read every old row and write them to ``fixture_path`` (a new ``loaddata`` fixture);
    2. drop the old tables and the app's ``django_migrations`` rows;
    3. ``migrate`` this app; 4. ``loaddata`` the fixture.
    Raises ``UpgradeError`` (or the database's or file system's error) when nothing was changed,
    ``UpgradeStopped`` when step 2, 3 or 4 failed: nothing is lost, the fixture holds the rows.
    """
    old = check_upgradable(alias)
    rows = read_old_rows(alias)
    tokens = sum(count_rows(alias, DROPPED).values())
    instances = [instance for model_rows in rows.values() for instance in model_rows]
    write_fixture(instances, fixture_path)
    counts = ", ".join(f"{len(model_rows)} {model._meta.label}" for model, model_rows in rows.items())
    log(f"1/4 wrote {len(instances)} row(s) to {fixture_path}: {counts}")

    try:
        drop_tables(alias)
        MigrationRecorder(connections[alias]).migration_qs.filter(app=APP_LABEL).delete()
        log(f"2/4 dropped the old tables and the history of migrations {', '.join(old)}")
        call_command("migrate", APP_LABEL, database=alias, verbosity=0, interactive=False)
        log("3/4 migrated to this package's schema")
        if instances:
            call_command("loaddata", str(fixture_path), database=alias, verbosity=0)
    except (DatabaseError, OSError) as exc:
        raise UpgradeStopped(fixture_path, exc) from exc
    log(f"4/4 loaded the rows back; {tokens} old token(s) not carried (they expire within a minute anyway)")
