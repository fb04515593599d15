"""System checks: the deployment guide's production checklist, run by ``manage.py check``.

Ids are ``aws_websockets.<E|W|I>NNN``; each is defined once, as a ``messages.Template``
constant in the module of its topic, and listed with its fix in docs/checks.md:

- ``views``: the URLconf and the routed views (E001, E002, W002-W005, W047);
- ``legacy_views``: the 4.x view API kept without effect (W060-W062);
- ``connect_plans``: how each routed view connects, under ``--deploy`` (I090);
- ``settings``: the ``WEBSOCKETS`` dict and the AWS settings (E003, W001, W010, E042-E044, W048, W050);
- ``security``: Django's security settings (W020-W022);
- ``rate_limits``: the connect rate limit and its cache (W049, W053, E054);
- ``sending``: the send backend settings (W070, E071);
- ``local_development``: the local origin trap under ``DEBUG`` (W080);
- ``lambda_integration``: the view the Lambda handler runs events through (E095);
- ``migrations``: the old package's migration history (E038);
- ``database`` and ``records``: what ``check --deploy`` reads from the database (I039, W030-W037,
  W040, W041, W045, W046, W051, I052).

``check`` runs the configuration checks (the WEBSOCKETS dict, settings, URLconf, views: no database access, except
the migration history where Django names a database: ``migrate``, the test runner);
``check --deploy`` adds the production ones, including those that read the database
(records, secrets, cleanup, stale sessions) on the ``--database`` aliases given, else on the
database the ``ApiGateway`` model is read from.

Importing this package registers every check (``apps.ready`` does).
"""

from . import (  # noqa: F401  (each module registers its checks)
    connect_plans,
    database,
    lambda_integration,
    legacy_views,
    local_development,
    migrations,
    rate_limits,
    records,
    security,
    sending,
    settings,
    views,
)
from .database import CLEANUP_COMMANDS, CLEANUP_MAX_AGE, check_database
from .legacy_views import LEGACY_PRIVATE_METHODS, check_legacy_view_api
from .local_development import LOCAL_ORIGINS, check_local_origin
from .messages import NAMESPACE, REGISTRY, Template
from .migrations import check_migration_history
from .rate_limits import (
    MAX_CONNECTS_PER_MINUTE,
    NON_ATOMIC_CACHES,
    SHARED_ATOMIC_CACHES,
    check_deploy_rate_limit_cache,
    check_deploy_rate_limits,
    check_rate_limit_cache,
)
from .records import MIN_SECRET_LENGTH
from .security import check_django_settings
from .sending import check_send_settings
from .settings import (
    MAX_TOKEN_EXPIRY_SECONDS,
    check_credentials,
    check_deploy_lifetimes,
    check_region,
    check_settings,
)
from .views import (
    check_deploy_origin,
    check_deploy_views,
    check_handler_exposure,
    check_token_view,
    check_url_patterns,
    check_views,
)

__all__ = [
    "CLEANUP_COMMANDS",
    "CLEANUP_MAX_AGE",
    "LEGACY_PRIVATE_METHODS",
    "LOCAL_ORIGINS",
    "MAX_CONNECTS_PER_MINUTE",
    "MAX_TOKEN_EXPIRY_SECONDS",
    "MIN_SECRET_LENGTH",
    "NAMESPACE",
    "NON_ATOMIC_CACHES",
    "REGISTRY",
    "SHARED_ATOMIC_CACHES",
    "Template",
    "check_credentials",
    "check_database",
    "check_deploy_lifetimes",
    "check_deploy_origin",
    "check_deploy_rate_limit_cache",
    "check_deploy_rate_limits",
    "check_deploy_views",
    "check_django_settings",
    "check_handler_exposure",
    "check_legacy_view_api",
    "check_local_origin",
    "check_migration_history",
    "check_rate_limit_cache",
    "check_region",
    "check_send_settings",
    "check_settings",
    "check_token_view",
    "check_url_patterns",
    "check_views",
]
