"""The old package's schema (4.0.x and 4.1.0): how to recognise it and move off it without loss.

Both packages use the app label ``django_aws_api_gateway_websockets`` and the same table names,
and both have a migration called ``0001_initial``: on a database the old package migrated,
Django would take this package's tables as created. ``old_migrations`` finds that history (the
``aws_websockets.E038`` check stops ``migrate`` on it); ``upgrade`` carries the data across as
docs/upgrading.md describes, with a fixture file written before anything is dropped.

What the old releases left behind (read from databases the real 4.0.0 and 4.1.0 wheels
migrated, SQLite and PostgreSQL; see tests/legacy_wheels):

- Migration history: 4.0.x applies ``HISTORY_40`` (0001-0009); 4.1.0 applies those and
  ``0010``-``0015`` (``HISTORY_41``). Any other set of names is a history this module does not
  know, and is refused rather than guessed at.
- Every old column has a column of the same name and a compatible type in this package's
  tables, so the current models read the old tables by naming only those columns
  (``columns_for``). No old column has a database default: every value is in the rows.
- 4.1.0's additions: ``ApiGateway.provisioning_status`` / ``last_error`` (varchar(255) there,
  text here), route ``route_id`` / ``integration_id``, session ``session_key_hash`` /
  ``auth_hash``, and three tables: ``channelpermission``, ``channelpermissionrule`` and the
  rule <-> ``auth.Permission`` table. Django names that last one after the backend's identifier
  limit (``..._channelpermissionrule_permissions`` on SQLite, truncated with a hash on
  PostgreSQL), and this package's model may be named after another backend's limit, so it is
  found by introspection (``rule_permission_tables``), never by name. Its ``id`` column follows
  the old project's ``DEFAULT_AUTO_FIELD``; pairs are carried as (rule, permission), the
  permission identified by app label, model and codename.
- Keyed hashes: 4.1.0 stores ``salted_hmac(salt, value, algorithm="sha256")`` with the project's
  ``SECRET_KEY`` for the Django session key (token ``session_key`` and session
  ``session_key_hash``) and for the user's session auth hash (``auth_hash``), with the salts
  ``login.SESSION_KEY_SALT`` / ``login.AUTH_HASH_SALT``: the same as here, so they stay valid.
  4.0.x stored the raw session key on tokens; it is hashed on the way (``login.hash_session_key``).
  Both stored the token itself in clear; this package stores its SHA-256 (``tokens.hash_token``),
  so the browser's raw token still works after the upgrade.
- The gateway secret of 4.1.0 is not in the database: ``settings.WEBSOCKETS["gateway_secret"]``
  (a string, or a list whose first entry is what the integrations send and all of which are
  accepted; empty and non-string entries ignored), sent by API Gateway as the header
  ``X-Ws-Gateway-Secret``. The upgrade puts the first on every record as ``integration_secret``,
  the second as ``previous_integration_secret`` (accepted for ``secret_grace_seconds`` after
  ``secret_rotated_at`` = the upgrade) and sets ``accepts_legacy_secret_header`` until
  ``sync_api_gateway`` maps ``X-Gateway-Secret`` on the integrations. It is read from
  ``settings.WEBSOCKETS`` directly: ``conf`` does not know the key.
- ``provisioning_status`` ``creating`` means a 4.1.0 run claimed the record and may have created
  the API in AWS without recording its id; it is carried as is (``Plan.creating``) so provisioning
  does not create a second API. 4.0.x had no status: it is derived from the flags exactly as this
  package's migration 0003 does for existing rows, as is a 4.1.0 ``pending`` record whose API
  exists (made before its 0012), which 4.1.0 itself treated as complete.

- Why the tables are dropped and recreated rather than altered: besides the shared
  ``0001_initial``, the old tables carry names of their own. PostgreSQL keeps index, key and
  constraint names from interim table names of old migrations (``websocket_tokens_*``,
  ``connection_rate_limits_*``, an ``author_id`` index on sessions), and the old named indexes
  ``idx_ip_attempt_time`` / ``idx_user_attempt_time`` (which this package's rate-limit model
  reuses) and ``idx_websocket_tokens_used`` would collide with the ones ``migrate`` creates.
  The old types all fit: 4.1.0's ``last_error`` is varchar(255) (text here), its channel names
  follow ``^[a-zA-Z0-9_-]+$`` (this package also allows ``.``), its ``access`` values are
  this package's four, and its gateway secrets are at least 32 characters of
  ``A-Za-z0-9._~+/=-`` (a record holds up to 128).

Whatever the upgrade cannot carry (a column or table no known release made, a third gateway
secret) is listed by ``Plan.uncarried``; ``upgrade`` refuses to start while the list is not
empty unless ``discard_uncarried`` is given.
"""

import datetime
import json
import os
from dataclasses import dataclass, field

from django.conf import settings
from django.core import serializers
from django.core.management import call_command
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from .exceptions import WebSocketsError
from .login import hash_session_key
from .models import (
    ApiGateway,
    ApiGatewayAdditionalRoute,
    ChannelMessage,
    ChannelPermission,
    ChannelPermissionRule,
    ChannelSequence,
    CleanupRun,
    ConnectionRateCounter,
    ConnectionRateLimit,
    ProvisioningStatus,
    WebSocketSession,
    WebSocketToken,
)
from .tokens import hash_token

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


class UpgradeStopped(WebSocketsError):
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


def configured_gateway_secrets():
    """``WEBSOCKETS["gateway_secret"]`` as 4.1.0 read it: a string or a list/tuple of strings,
    empty and non-string entries ignored; the first is the one its integrations send."""
    value = (getattr(settings, "WEBSOCKETS", None) or {}).get("gateway_secret")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return []
    return [secret for secret in value if isinstance(secret, str) and secret]


@dataclass
class Uncarried:
    """Something the upgrade cannot carry: what, how many rows (or values), and why."""

    what: str
    count: int
    why: str

    def __str__(self):
        return f"{self.what}: {self.count} ({self.why})"


@dataclass
class Plan:
    """What ``upgrade`` would do on ``alias``: read, nothing changed."""

    alias: str
    version: str
    migrations: list
    rows: dict  # model -> [instances], in copy order
    rule_permissions: dict  # rule id -> [(codename, app_label, model)]
    uncarried: list = field(default_factory=list)
    creating: list = field(default_factory=list)  # gateways a 4.1.0 run left 'creating'
    secrets: list = field(default_factory=list)  # the configured 4.1.0 gateway secrets (carried: first two)
    drop_tables: list = field(default_factory=list)  # table names, in drop order

    def counts(self):
        return {model._meta.label: len(instances) for model, instances in self.rows.items()}

    @property
    def pair_count(self):
        return sum(len(pairs) for pairs in self.rule_permissions.values())


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


def _count(connection, table, where=""):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)} {where}")
        return cursor.fetchone()[0]


def _derived_status(record):
    """A record's status from its flags, as this package's migration 0003 sets it."""
    if record.api_created and record.custom_domain_created:
        return ProvisioningStatus.MAPPED
    if record.api_created:
        return ProvisioningStatus.DEPLOYED if record.deployment_id else ProvisioningStatus.API_CREATED
    return ProvisioningStatus.PENDING


def plan_upgrade(alias, now=None):
    """Read everything the upgrade would carry from ``alias`` into a ``Plan``; changes nothing."""
    version, applied = detect_version(alias)
    connection = connections[alias]
    tables = set(connection.introspection.table_names())
    columns = columns_for(version)
    uncarried = []

    # The schema must be the one the history says; extra columns or tables cannot be carried.
    for model, expected in columns.items():
        table = model._meta.db_table
        if table not in tables:
            raise UpgradeError(
                f"Table {table} is missing although {version}'s migrations are applied; nothing was changed."
            )
        actual = _table_columns(connection, table)
        missing = sorted(set(expected) - set(actual))
        if missing:
            raise UpgradeError(
                f"Table {table} lacks the column(s) {', '.join(missing)} that {version}'s migrations create; "
                "nothing was changed."
            )
        for extra in (c for c in actual if c not in expected):
            quoted = connection.ops.quote_name(extra)
            uncarried.append(
                Uncarried(
                    f"column {table}.{extra}",
                    _count(connection, table, f"WHERE {quoted} IS NOT NULL"),
                    f"no {version} migration made it; rows with a value",
                )
            )
    m2m = rule_permission_tables(alias, tables) if version == V41 else []
    if version == V41 and len(m2m) != 1:
        raise UpgradeError(f"Expected one channel rule <-> permission table on '{alias}', found {m2m or 'none'}.")
    known = {model._meta.db_table for model in columns} | set(m2m)
    ours = {model._meta.db_table for model in DROP_ORDER}
    app_prefix = APP_LABEL + "_"
    for table in sorted(tables - known):
        if table in ours or table.startswith(ChannelPermissionRule._meta.db_table + "_"):
            uncarried.append(
                Uncarried(f"table {table}", _count(connection, table), f"{version} has no such table; dropped, rows")
            )
        elif table.startswith(app_prefix):
            uncarried.append(
                Uncarried(f"table {table}", _count(connection, table), f"not made by {version}; left in place, rows")
            )

    rows = {}
    for model, names in columns.items():
        values = model.objects.using(alias).order_by("pk").values(*names)
        rows[model] = [model(**row) for row in values]

    secrets = configured_gateway_secrets() if version == V41 else []
    now = now or timezone.now()
    max_secret = ApiGateway._meta.get_field("integration_secret").max_length or 0  # a CharField's, never None
    if secrets and len(secrets[0]) > max_secret:
        raise UpgradeError(
            f'WEBSOCKETS["gateway_secret"]\'s first secret is longer than the {max_secret} characters a record holds; '
            "rotate to a shorter one with 4.1.0 (updateApiGatewayIntegrations) first. Nothing was changed."
        )
    carried = secrets[:2]
    if len(carried) == 2 and len(carried[1]) > max_secret:
        uncarried.append(
            Uncarried(
                'WEBSOCKETS["gateway_secret"] second secret',
                1,
                f"longer than {max_secret} characters; no longer accepted after the upgrade",
            )
        )
        carried = carried[:1]
    if len(secrets) > 2:
        uncarried.append(
            Uncarried(
                'WEBSOCKETS["gateway_secret"] entries after the second',
                len(secrets) - 2,
                "accepted by 4.1.0, a record keeps two; no longer accepted after the upgrade",
            )
        )

    creating = []
    for record in rows[ApiGateway]:
        if version == V40 or (record.provisioning_status == ProvisioningStatus.PENDING and record.api_created):
            record.provisioning_status = _derived_status(record)
        if record.provisioning_status == ProvisioningStatus.CREATING:
            creating.append(record)
        # The secret the deployed integrations send, if any (4.1.0 with gateway_secret).
        # Without one the record accepts every request (check W032 warns), as before.
        record.integration_secret = carried[0] if carried else ""
        record.previous_integration_secret = carried[1] if len(carried) > 1 else ""
        record.secret_rotated_at = now if len(carried) > 1 else None
        record.accepts_legacy_secret_header = bool(carried)

    for token in rows[WebSocketToken]:
        token.token = hash_token(token.token)
        if version == V40:  # the raw Django session key; 4.1.0's is the keyed hash already
            token.session_key = hash_session_key(token.session_key)

    rule_permissions: dict[int, list[tuple[str, str, str]]] = {}
    if m2m:
        qn = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT m.channelpermissionrule_id, p.codename, ct.app_label, ct.model FROM {qn(m2m[0])} m "
                "JOIN auth_permission p ON p.id = m.permission_id "
                "JOIN django_content_type ct ON ct.id = p.content_type_id ORDER BY m.channelpermissionrule_id, m.id"
            )
            for rule_id, codename, app_label, model_name in cursor.fetchall():
                rule_permissions.setdefault(rule_id, []).append((codename, app_label, model_name))
        pairs = _count(connection, m2m[0])
        if pairs != sum(map(len, rule_permissions.values())):  # a pair whose permission vanished
            raise UpgradeError(f"{m2m[0]} has pairs whose permission does not exist; nothing was changed.")

    return Plan(
        alias=alias,
        version=version,
        migrations=applied,
        rows=rows,
        rule_permissions=rule_permissions,
        uncarried=uncarried,
        creating=creating,
        secrets=secrets,
        drop_tables=tables_to_drop(alias, tables),
    )


def count_rows(alias, models):
    """``{model label: rows}`` in these models' tables on ``alias``."""
    return {model._meta.label: model.objects.using(alias).count() for model in models}


def fixture_entries(plan):
    """The plan's rows as ``loaddata`` entries; rule permissions by natural key
    (codename, app label, model), looked up again when loaded."""
    entries = []
    for model, instances in plan.rows.items():
        if model is ChannelPermissionRule:
            rule_entries = serializers.serialize("python", instances, fields=["channel_permission"])
            for entry in rule_entries:
                entry["fields"]["permissions"] = [list(key) for key in plan.rule_permissions.get(entry["pk"], [])]
            entries.extend(rule_entries)
        else:
            entries.extend(serializers.serialize("python", instances))
    return entries


class _ExactEncoder(DjangoJSONEncoder):
    """Django's encoder, but datetimes keep their microseconds (it rounds them to milliseconds)."""

    def default(self, o):
        if isinstance(o, datetime.datetime):
            return o.isoformat()
        return super().default(o)


def write_fixture(entries, fixture_path):
    """Write ``entries`` to a new file, readable by its owner only (it holds the gateway
    secrets); a half-written file is removed, an existing one kept."""
    descriptor = os.open(fixture_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never over an earlier save
    with open(descriptor, "w", encoding="utf-8") as fixture:
        try:
            json.dump(entries, fixture, cls=_ExactEncoder, indent=1)
        except BaseException:
            fixture.close()
            os.remove(fixture_path)
            raise


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


def drop_tables(alias, tables=None):
    """Drop ``tables`` (default: ``tables_to_drop``) on ``alias``, in that order, by name: the
    M2M table's name depends on the backend that made it, not on this process's models."""
    connection = connections[alias]
    tables = tables_to_drop(alias) if tables is None else tables
    with connection.schema_editor() as editor:
        for table in tables:
            editor.execute(editor.sql_delete_table % {"table": editor.quote_name(table)})


def describe_secrets(plan):
    """One line on what the records' integration secrets become (never the secrets)."""
    if plan.version != V41:
        return (
            "integration_secret: empty on every record (4.0.x integrations send none); "
            "set one with `sync_api_gateway --pk N --rotate-secret`"
        )
    if not plan.secrets:
        return (
            'integration_secret: empty on every record (no WEBSOCKETS["gateway_secret"] configured); '
            "set one with `sync_api_gateway --pk N --rotate-secret`"
        )
    text = (
        'integration_secret = WEBSOCKETS["gateway_secret"][0] on every record, header X-Ws-Gateway-Secret '
        "accepted until `sync_api_gateway --pk N` re-syncs"
    )
    if len(plan.secrets) > 1:
        text += '; previous_integration_secret = WEBSOCKETS["gateway_secret"][1], accepted for secret_grace_seconds'
    return text


def upgrade(alias, fixture_path, log=print, discard_uncarried=False, plan=None):
    """Move the old schema's data to this package's schema on database ``alias``.

    1. read every old row and write them to ``fixture_path`` (a new ``loaddata`` fixture);
    2. drop the old tables and the app's ``django_migrations`` rows;
    3. ``migrate`` this app; 4. ``loaddata`` the fixture.
    Raises ``UpgradeError`` (or the database's or file system's error) when nothing was changed
    (among others when something cannot be carried and ``discard_uncarried`` is false),
    ``UpgradeStopped`` when step 2, 3 or 4 failed: nothing is lost, the fixture holds the rows.
    Returns the ``Plan`` it carried out.
    """
    plan = plan or plan_upgrade(alias)
    if plan.uncarried and not discard_uncarried:
        raise UpgradeError(
            "These cannot be carried over: "
            + "; ".join(map(str, plan.uncarried))
            + ". Nothing was changed; run again with --discard-uncarried to upgrade without them."
        )
    entries = fixture_entries(plan)
    write_fixture(entries, fixture_path)
    counts = ", ".join(f"{rows} {label}" for label, rows in plan.counts().items())
    pairs = f", {plan.pair_count} rule permission(s)" if plan.rule_permissions else ""
    log(f"1/4 found {plan.version}; wrote {len(entries)} row(s) to {fixture_path}: {counts}{pairs}")

    try:
        drop_tables(alias, plan.drop_tables)
        MigrationRecorder(connections[alias]).migration_qs.filter(app=APP_LABEL).delete()
        log(
            f"2/4 dropped the old tables ({len(plan.drop_tables)}) and the history of migrations "
            f"{', '.join(plan.migrations)}"
        )
        call_command("migrate", APP_LABEL, database=alias, verbosity=0, interactive=False)
        log("3/4 migrated to this package's schema")
        if entries:
            call_command("loaddata", str(fixture_path), database=alias, verbosity=0)
    except (DatabaseError, OSError) as exc:
        raise UpgradeStopped(fixture_path, exc) from exc
    log(f"4/4 loaded the rows back; {describe_secrets(plan)}")
    for item in plan.uncarried:
        log(f"    not carried: {item}")
    return plan
