"""What the upgrade would carry, read from the old tables into a ``Plan``; changes nothing."""

from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections
from django.utils import timezone

from ..login import hash_session_key
from ..models import ApiGateway, ChannelPermissionRule, ProvisioningStatus, WebSocketToken
from ..tokens import hash_token
from .detect import (
    APP_LABEL,
    DROP_ORDER,
    V40,
    V41,
    UpgradeError,
    _table_columns,
    columns_for,
    detect_version,
    rule_permission_tables,
    tables_to_drop,
)


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
    uncarried = _uncarried_columns(connection, tables, columns, version)
    m2m = _rule_permission_table(alias, tables, version)
    uncarried += _uncarried_tables(connection, tables, columns, m2m, version)
    rows = _read_rows(alias, columns)
    secrets = configured_gateway_secrets() if version == V41 else []
    carried = _carried_secrets(secrets, uncarried)
    creating = _convert_gateways(rows[ApiGateway], version, carried, now or timezone.now())
    _convert_tokens(rows[WebSocketToken], version)
    return Plan(
        alias=alias,
        version=version,
        migrations=applied,
        rows=rows,
        rule_permissions=_read_rule_permissions(connection, m2m),
        uncarried=uncarried,
        creating=creating,
        secrets=secrets,
        drop_tables=tables_to_drop(alias, tables),
    )


def _uncarried_columns(connection, tables, columns, version):
    """The schema must be the one the history says (else ``UpgradeError``); extra columns cannot
    be carried: one ``Uncarried`` each, counting the rows with a value."""
    uncarried = []
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
    return uncarried


def _rule_permission_table(alias, tables, version):
    """4.1.0's rule <-> permission table, as a list of its one name (4.0.x: none)."""
    m2m = rule_permission_tables(alias, tables) if version == V41 else []
    if version == V41 and len(m2m) != 1:
        raise UpgradeError(f"Expected one channel rule <-> permission table on '{alias}', found {m2m or 'none'}.")
    return m2m


def _uncarried_tables(connection, tables, columns, m2m, version):
    """Tables ``version`` did not make: ours are dropped with their rows, other tables of the
    app's prefix are left in place; both are listed."""
    known = {model._meta.db_table for model in columns} | set(m2m)
    ours = {model._meta.db_table for model in DROP_ORDER}
    app_prefix = APP_LABEL + "_"
    uncarried = []
    for table in sorted(tables - known):
        if table in ours or table.startswith(ChannelPermissionRule._meta.db_table + "_"):
            uncarried.append(
                Uncarried(f"table {table}", _count(connection, table), f"{version} has no such table; dropped, rows")
            )
        elif table.startswith(app_prefix):
            uncarried.append(
                Uncarried(f"table {table}", _count(connection, table), f"not made by {version}; left in place, rows")
            )
    return uncarried


def _read_rows(alias, columns):
    """``{model: [instances]}`` read by naming only the old columns, in primary-key order."""
    rows = {}
    for model, names in columns.items():
        values = model.objects.using(alias).order_by("pk").values(*names)
        rows[model] = [model(**row) for row in values]
    return rows


def _carried_secrets(secrets, uncarried):
    """The (at most two) configured 4.1.0 secrets a record will hold; what cannot be carried is
    appended to ``uncarried``. A first secret too long for a record is an ``UpgradeError``."""
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
    return carried


def _convert_gateways(records, version, carried, now):
    """Set each record's status and secrets as this package keeps them; returns the records a
    4.1.0 run left ``creating``."""
    creating = []
    for record in records:
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
    return creating


def _convert_tokens(tokens, version):
    """Tokens are stored as their SHA-256, session keys as keyed hashes."""
    for token in tokens:
        token.token = hash_token(token.token)
        if version == V40:  # the raw Django session key; 4.1.0's is the keyed hash already
            token.session_key = hash_session_key(token.session_key)


def _read_rule_permissions(connection, m2m):
    """``{rule id: [(codename, app label, model)]}`` from the rule <-> permission table."""
    rule_permissions: dict[int, list[tuple[str, str, str]]] = {}
    if not m2m:
        return rule_permissions
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
    return rule_permissions


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
