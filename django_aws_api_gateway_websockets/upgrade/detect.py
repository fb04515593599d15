"""What old schema is there: the 4.x migration histories and tables, recognised or refused.

See the package docstring (``upgrade/__init__.py``) for what the old releases left behind.
"""

from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from ..exceptions import WebSocketsError
from ..models import (
    ApiGateway,
    ApiGatewayAdditionalRoute,
    ChannelMessage,
    ChannelPermission,
    ChannelPermissionRule,
    ChannelSequence,
    CleanupRun,
    ConnectionRateCounter,
    ConnectionRateLimit,
    MessagePart,
    Subscription,
    WebSocketSession,
    WebSocketToken,
)

APP_LABEL = ApiGateway._meta.app_label

HISTORY_40 = (
    "0001_initial",
    "0002_rename_author_websocketsession_user",
    "0003_auto_20220706_1018",
    "0004_auto_20221208_1227",
    "0005_apigatewayadditionalroute_deployed",
    "0006_auto_20221215_0847",
    "0007_connectionratelimit_websockettoken",
    "0008_remove_websockettoken_websocket_t_created_c55db3_idx_and_more",
    "0009_alter_connectionratelimit_table_and_more",
)
HISTORY_41 = HISTORY_40 + (
    "0010_hash_websockettoken_session_key",
    "0011_channelpermission_channelpermissionrule",
    "0012_apigateway_provisioning_status",
    "0013_apigatewayadditionalroute_aws_ids",
    "0014_websocketsession_auth_hash_and_more",
    "0015_alter_apigateway_provisioning_status",
)
V40, V41 = "4.0.x", "4.1.0"
HISTORIES = {V41: HISTORY_41, V40: HISTORY_40}

# The old tables' columns per model after 4.0.x's last migration (0009).
COLUMNS_40 = {
    ApiGateway: (
        "id",
        "api_name",
        "api_description",
        "default_channel_name",
        "domain_name",
        "target_base_endpoint",
        "certificate_arn",
        "hosted_zone_id",
        "api_key_selection_expression",
        "route_selection_expression",
        "route_key",
        "stage_name",
        "stage_description",
        "deployment_id",
        "tags",
        "api_id",
        "api_endpoint",
        "api_gateway_domain_name",
        "api_mapping_id",
        "api_created",
        "custom_domain_created",
        "created_on",
        "updated_on",
    ),
    ApiGatewayAdditionalRoute: (
        "id",
        "api_gateway_id",
        "name",
        "route_key",
        "integration_url",
        "deployed",
        "created_on",
        "updated_on",
    ),
    WebSocketSession: (
        "id",
        "connection_id",
        "channel_name",
        "user_id",
        "connected",
        "api_gateway_id",
        "request_count",
        "created_on",
        "updated_on",
    ),
    WebSocketToken: ("id", "token", "user_id", "session_key", "created_at", "used"),
    ConnectionRateLimit: ("id", "ip_address", "user_id", "attempt_time", "successful"),
}
# What 4.1.0 (0010-0015) added, per model.
ADDED_41 = {
    ApiGateway: ("provisioning_status", "last_error"),
    ApiGatewayAdditionalRoute: ("route_id", "integration_id"),
    WebSocketSession: ("session_key_hash", "auth_hash"),
    ChannelPermission: ("id", "channel_name", "access", "description", "created_on", "updated_on"),
    ChannelPermissionRule: ("id", "channel_permission_id"),
}
RULE_PERMISSION_COLUMNS = {"channelpermissionrule_id", "permission_id"}

# Every table of ours (the old schema holds some of them), children first (the rule <-> permission table,
# found by introspection, goes just before ChannelPermissionRule).
DROP_ORDER = (
    ChannelMessage,
    ChannelSequence,
    MessagePart,
    Subscription,
    WebSocketSession,
    ApiGatewayAdditionalRoute,
    WebSocketToken,
    ConnectionRateLimit,
    ConnectionRateCounter,
    ChannelPermissionRule,
    ChannelPermission,
    ApiGateway,
    CleanupRun,
)


class UpgradeError(WebSocketsError):
    """The database is not in a state ``upgrade`` can start from; nothing was changed."""


def own_migration_names():
    """This app's migrations on disk (``MIGRATION_MODULES`` respected) and those they replace."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    ours = [migration for (app, _name), migration in loader.disk_migrations.items() if app == APP_LABEL]
    return {migration.name for migration in ours} | {
        name for migration in ours for app, name in migration.replaces if app == APP_LABEL
    }


def applied_migrations(alias):
    """Names of this app's applied migrations on ``alias`` (empty without a history table)."""
    recorder = MigrationRecorder(connections[alias])
    if not recorder.has_table():
        return set()
    return set(recorder.migration_qs.filter(app=APP_LABEL).values_list("name", flat=True))


def old_migrations(alias, ours=None):
    """Names of applied migrations of this app that this package does not have, sorted."""
    ours = own_migration_names() if ours is None else ours
    return sorted(applied_migrations(alias) - ours)


def detect_version(alias):
    """``(version, applied names)`` of the old package's history on ``alias``; ``UpgradeError``
    when there is none, or when it is not exactly one release's complete history."""
    applied = applied_migrations(alias)
    ours = own_migration_names()
    if not applied - ours:
        raise UpgradeError(f"Database '{alias}' has no migration history of the old package: nothing to upgrade.")
    for version, history in HISTORIES.items():
        if applied == set(history):
            return version, sorted(applied)
    old = sorted(applied - ours)
    known = set(HISTORY_41)
    if applied <= known:  # part of a known history: the old package did not finish migrating
        missing = [name for name in HISTORY_40 if name not in applied]
        missing_41 = [name for name in HISTORY_41 if name not in applied]
        last = max(applied)
        if missing:
            hint = (
                f"install its last 4.x release (4.1.0, or 4.0.x) and run `migrate` first (missing: "
                f"{', '.join(missing)})"
            )
        else:
            hint = (
                f"4.1.0's migrations {', '.join(missing_41)} are missing: install 4.1.0 and run `migrate` "
                "first, so the tables have the columns this upgrade reads"
            )
        raise UpgradeError(f"Database '{alias}' stops at the old package's migration {last}: {hint}.")
    unknown = sorted(applied - known - ours)
    mixed = sorted(applied & ours - {"0001_initial"})
    what = []
    if unknown:
        what.append(f"migrations no 4.x release has ({', '.join(unknown)})")
    if mixed:
        what.append(f"this package's migrations beside the old ones ({', '.join(mixed)})")
    raise UpgradeError(
        f"Database '{alias}' has an unknown migration history of this app: {'; '.join(what) or ', '.join(old)}. "
        "Only the complete histories of 4.0.x (0001-0009) and 4.1.0 (0001-0015) can be upgraded; "
        "nothing was changed."
    )


def check_upgradable(alias):
    """The old migrations applied on ``alias``; ``UpgradeError`` when ``upgrade`` cannot start."""
    detect_version(alias)
    return old_migrations(alias)


def columns_for(version):
    """``{model: old column names}`` of ``version``'s tables."""
    columns = dict(COLUMNS_40)
    if version == V41:
        for model, added in ADDED_41.items():
            columns[model] = columns.get(model, ()) + added
    return columns


def _table_columns(connection, table):
    with connection.cursor() as cursor:
        return [column.name for column in connection.introspection.get_table_description(cursor, table)]


def rule_permission_tables(alias, tables=None):
    """The rule <-> permission M2M table(s) on ``alias``, found by their columns."""
    connection = connections[alias]
    tables = set(connection.introspection.table_names()) if tables is None else tables
    prefix = ChannelPermissionRule._meta.db_table + "_"
    return sorted(
        table
        for table in tables
        if table.startswith(prefix) and set(_table_columns(connection, table)) >= RULE_PERMISSION_COLUMNS
    )


def tables_to_drop(alias, existing=None):
    """This app's tables on ``alias`` (old or new schema), children first, with the rule <->
    permission table(s) just before the rule table."""
    connection = connections[alias]
    existing = set(connection.introspection.table_names()) if existing is None else existing
    tables = []
    for model in DROP_ORDER:
        if model is ChannelPermissionRule:
            tables.extend(rule_permission_tables(alias, existing))
        if model._meta.db_table in existing:
            tables.append(model._meta.db_table)
    return tables
