"""The old package's schema (4.0.x and 4.1.0): how to recognise it and move off it without loss.

Both packages use the app label ``django_aws_api_gateway_websockets`` and the same table names,
and both have a migration called ``0001_initial``: on a database the old package migrated,
Django would take this package's tables as created. ``detect.old_migrations`` finds that history (the
``aws_websockets.E038`` check stops ``migrate`` on it); ``apply.upgrade`` carries the data across as
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

from .apply import UpgradeStopped, count_rows, drop_tables, fixture_entries, upgrade, write_fixture
from .detect import (
    ADDED_41,
    APP_LABEL,
    COLUMNS_40,
    DROP_ORDER,
    HISTORIES,
    HISTORY_40,
    HISTORY_41,
    V40,
    V41,
    UpgradeError,
    applied_migrations,
    check_upgradable,
    columns_for,
    detect_version,
    old_migrations,
    own_migration_names,
    rule_permission_tables,
    tables_to_drop,
)
from .plan import Plan, Uncarried, configured_gateway_secrets, describe_secrets, plan_upgrade

__all__ = [
    "ADDED_41",
    "APP_LABEL",
    "COLUMNS_40",
    "DROP_ORDER",
    "HISTORIES",
    "HISTORY_40",
    "HISTORY_41",
    "Plan",
    "Uncarried",
    "UpgradeError",
    "UpgradeStopped",
    "V40",
    "V41",
    "applied_migrations",
    "check_upgradable",
    "columns_for",
    "configured_gateway_secrets",
    "count_rows",
    "describe_secrets",
    "detect_version",
    "drop_tables",
    "fixture_entries",
    "old_migrations",
    "own_migration_names",
    "plan_upgrade",
    "rule_permission_tables",
    "tables_to_drop",
    "upgrade",
    "write_fixture",
]
