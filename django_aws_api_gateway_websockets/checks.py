"""System checks: the deployment guide's production checklist, run by ``manage.py check``.

Ids are ``aws_websockets.<E|W|I>NNN``; every one is listed with its fix in docs/checks.md.
``check`` runs the configuration checks (the WEBSOCKETS dict, settings, URLconf, views: no database access, except
the migration history where Django names a database: ``migrate``, the test runner);
``check --deploy`` adds the production ones, including those that read the database
(records, secrets, cleanup, stale sessions) on the ``--database`` aliases given, else on the
database the ``ApiGateway`` model is read from.
"""

from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, router, transaction
from django.http.request import validate_host
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse
from django.urls.converters import SlugConverter
from django.utils import timezone

from . import aws, conf, protocol, security
from .gateway.records import LOCAL_API_ID_PREFIX, is_local_record, is_loopback_url

NAMESPACE = "aws_websockets"
CLEANUP_COMMANDS = ("clear_websocket_sessions", "cleanup_websocket_tokens")
CLEANUP_MAX_AGE = timedelta(days=1)
MIN_SECRET_LENGTH = 32  # generate_integration_secret gives 43 characters
MAX_TOKEN_EXPIRY_SECONDS = 3600
MAX_CONNECTS_PER_MINUTE = 1000  # per source IP (and per user): more cannot stop a flood


def _setting(name):
    """``WEBSOCKETS[name]``, or its default when the value is invalid (E042/E044 report it)."""
    user = getattr(settings, "WEBSOCKETS", None)
    value = user.get(name) if isinstance(user, dict) else None
    if value is None or conf.value_problem(name, value):
        return conf.DEFAULTS[name]
    return value


def _served_views(base_class, resolver=None, prefix=""):
    """``(route string, pattern, view class)`` of every URL pattern serving a ``base_class``."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _served_views(base_class, entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            view_class = getattr(entry.callback, "view_class", None)
            if isinstance(view_class, type) and issubclass(view_class, base_class):
                yield prefix + str(entry.pattern), entry.pattern, view_class


def _websocket_views():
    from .views import WebSocketView

    return list(dict.fromkeys(view for _route, _pattern, view in _served_views(WebSocketView)))


# --- check: URLconf and views ---------------------------------------------------------


@register(NAMESPACE, Tags.urls)
def check_url_patterns(app_configs, **kwargs):
    from .views import WebSocketView

    messages = []
    for route, pattern, view_class in _served_views(WebSocketView):
        converter = getattr(pattern, "converters", {}).get("route")
        if not isinstance(converter, SlugConverter):
            messages.append(
                Error(
                    f"The URL pattern '{route}' of {view_class.__name__} does not capture <slug:route>.",
                    hint='Use path("ws/<slug:route>", View.as_view()): API Gateway calls .../connect, '
                    ".../disconnect and .../default.",
                    id=f"{NAMESPACE}.E001",
                )
            )
    return messages


@register(NAMESPACE, Tags.urls)
def check_token_view(app_configs, **kwargs):
    from .views import WebSocketTokenView

    token_views = [view.__name__ for view in _websocket_views() if view.USE_WS_TOKEN]
    if not token_views:
        return []
    if not any(_served_views(WebSocketTokenView)):
        return [
            Error(
                f"{', '.join(token_views)} require a token (USE_WS_TOKEN) but no URL pattern serves "
                "WebSocketTokenView: no browser could ever connect.",
                hint='Add path("api/ws-token/", WebSocketTokenView.as_view(), name="websocket_token").',
                id=f"{NAMESPACE}.E002",
            )
        ]
    name = _setting("token_url_name")
    try:
        reverse(name)
    except NoReverseMatch:
        return [
            Warning(
                f"No URL is named '{name}': the websocket_config tag and AppChannelWebSocketMixin "
                "cannot find the token view.",
                hint='Name the WebSocketTokenView pattern "websocket_token", or set WEBSOCKETS["token_url_name"].',
                id=f"{NAMESPACE}.W004",
            )
        ]
    return []


@register(NAMESPACE)
def check_views(app_configs, **kwargs):
    return [
        Warning(
            f"{view.__name__} requires permissions but USE_WS_TOKEN is False.",
            hint="Without a token only a session cookie shared with the WebSocket domain identifies the "
            "user; set USE_WS_TOKEN = True.",
            id=f"{NAMESPACE}.W002",
        )
        for view in _websocket_views()
        if not view.USE_WS_TOKEN and (view.permissions_required or view.all_permissions_required)
    ]


@register(NAMESPACE)
def check_handler_exposure(app_configs, **kwargs):
    """Views whose handlers are every public method taking ``request`` (the 4.x rule)."""
    messages = []
    for view in _websocket_views():
        implicit = sorted(view.implicit_handlers())
        if implicit:
            messages.append(
                Warning(
                    f"{view.__name__} exposes its public methods to messages implicitly: {', '.join(implicit)}.",
                    hint="Mark the methods clients may call with @handler (from django_aws_api_gateway_websockets.views), "
                    "or list them in ALLOWED_HANDLERS; every other method then stays out of reach.",
                    id=f"{NAMESPACE}.W005",
                )
            )
    return messages


def _served_view_kwargs(resolver=None):
    """``(view class, as_view() arguments)`` of every URL pattern serving a ``WebSocketView``."""
    from .views import WebSocketView

    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _served_view_kwargs(entry)
        elif isinstance(entry, URLPattern):
            view_class = getattr(entry.callback, "view_class", None)
            if isinstance(view_class, type) and issubclass(view_class, WebSocketView):
                yield view_class, getattr(entry.callback, "view_initkwargs", None) or {}


def _is_legacy_default(name, value):
    from .views import LEGACY_ATTRIBUTE_DEFAULTS

    default = LEGACY_ATTRIBUTE_DEFAULTS[name]
    if isinstance(default, tuple):  # the 4.x lists (a subclass may extend them)
        return isinstance(value, (list, tuple)) and tuple(value) == default
    return value == default and type(value) is type(default)


#: 4.x's private WebSocketView methods that 5.x has not (check W062): a 4.x subclass
#: overriding one to customise a check (say, refuse some gateways) loads and runs, and its
#: override is silently never called. What does the job now, for the message.
LEGACY_PRIVATE_METHODS = {
    "_allowed_apigateway": "the gateway is the record of the request's API id, authenticated by its "
    "integration secret; aws_api_gateway_id restricts a view to one API",
    "_check_platform_registered_api_gateways": "the gateway is the record of the request's API id",
    "_expected_useragent": "the User-Agent is not checked (the integration secret is)",
    "_expected_headers": "headers are not checked (the integration secret is)",
    "_expected_connection_headers": "headers are not checked (the integration secret is)",
    "_check_allowed_hosts": "the browser's Origin is checked against CSRF_TRUSTED_ORIGINS and ALLOWED_HOSTS",
    "_check_host_is_in_origin": "the browser's Origin is checked against CSRF_TRUSTED_ORIGINS and ALLOWED_HOSTS",
    "_get_channel_name": "the channel comes from ?channel= or the record's default_channel_name; "
    "refuse channels in can_join_channel()",
    "_get_client_ip": "the client address is API Gateway's X-Source-Ip",
    "_validate_connection_id": "connection ids are validated by the package",
    "_add_user_to_request": "request.user is the connection's user",
    "_return_bad_request": "refusals are answered in JSON; shape them in permission_denied()",
    "_debug": "the view logs to the django_aws_api_gateway_websockets.views logger",
    "_get_current_class_methods": "handlers are marked @handler or listed in ALLOWED_HANDLERS",
}


@register(NAMESPACE)
def check_legacy_view_api(app_configs, **kwargs):
    """Routed views relying on the 4.x view API 5.x keeps without effect: a class attribute
    or ``as_view()`` argument (W060), a response hook 5.x never calls (W061), a 4.x private
    method 5.x has not, overridden (W062)."""
    from .views import LEGACY_ATTRIBUTE_REASONS, LEGACY_HOOKS, LEGACY_REMOVAL_RELEASE, WebSocketView

    messages = []
    seen: set[tuple[object, ...]] = set()  # a view served by several patterns is named once
    for view, initkwargs in _served_view_kwargs():
        for name, reason in LEGACY_ATTRIBUTE_REASONS.items():
            where = None
            if name in initkwargs and not _is_legacy_default(name, initkwargs[name]):
                where = f"is given {name}={initkwargs[name]!r} by as_view()"
            elif not _is_legacy_default(name, getattr(view, name)):
                where = f"sets {name}"
            if where and (view, name, where) not in seen:
                seen.add((view, name, where))
                messages.append(
                    Warning(
                        f"{view.__name__} {where}, which has no effect in 5.x: {reason}.",
                        hint=f"Remove it: the 4.x attribute is deprecated and removed in {LEGACY_REMOVAL_RELEASE} "
                        "(docs/upgrading.md, Coming from 4.x).",
                        id=f"{NAMESPACE}.W060",
                    )
                )
        for name, instead in LEGACY_HOOKS.items():
            if getattr(view, name) is not getattr(WebSocketView, name) and (view, name) not in seen:
                seen.add((view, name))
                messages.append(
                    Warning(
                        f"{view.__name__} overrides {name}(), which 5.x never calls: {instead}.",
                        hint="Remove the override (the 4.x hook is deprecated and removed in "
                        f"{LEGACY_REMOVAL_RELEASE}); refusals go through permission_denied(), handle_exception() "
                        "and default() (docs/upgrading.md, Coming from 4.x).",
                        id=f"{NAMESPACE}.W061",
                    )
                )
        for name, instead in LEGACY_PRIVATE_METHODS.items():
            if callable(getattr(view, name, None)) and not hasattr(WebSocketView, name) and (view, name) not in seen:
                seen.add((view, name))
                messages.append(
                    Warning(
                        f"{view.__name__} defines {name}(), a 4.x private method 5.x never calls: {instead}.",
                        hint="Its customisation no longer applies: move it to the 5.x hook (docs/api.md), "
                        "e.g. can_join_channel() or _additional_connection_checks(), then remove it "
                        "(docs/upgrading.md, Coming from 4.x).",
                        id=f"{NAMESPACE}.W062",
                    )
                )
    return messages


SETTINGS_DOC = "docs/settings.md (The WEBSOCKETS dict)"  # the README has no settings list


@register(NAMESPACE)
def check_settings(app_configs, **kwargs):
    """The ``WEBSOCKETS`` dict itself: a dict, known keys, values of the right type and range."""
    user = getattr(settings, "WEBSOCKETS", None)
    if user is not None and not isinstance(user, dict):
        return [
            Error(
                f"{conf.NOT_A_DICT} It is {type(user).__name__}.",
                hint=f'WEBSOCKETS = {{"token_expiry_seconds": 60, ...}}: every key is optional, listed in {SETTINGS_DOC}.',
                id=f"{NAMESPACE}.E042",
            )
        ]
    errors, unknown = conf.validate_settings(user)
    return [
        Warning(
            message, hint=f"Remove it, or correct its name: every key is in {SETTINGS_DOC}.", id=f"{NAMESPACE}.W043"
        )
        for message in unknown
    ] + [
        Error(message, hint="Correct the value, or remove the key to use the default.", id=f"{NAMESPACE}.E044")
        for message in errors
    ]


@register(NAMESPACE)
def check_region(app_configs, **kwargs):
    try:
        session = aws._get_session()
    except ImproperlyConfigured as exc:
        return [Error(f"The AWS settings are invalid: {exc}", id=f"{NAMESPACE}.E003")]
    if aws.configured_region() or session.region_name:
        return []
    return [
        Warning(
            "No AWS region is configured.",
            hint="Set AWS_GATEWAY_REGION_NAME (or AWS_REGION_NAME), or a region on every ApiGateway record.",
            id=f"{NAMESPACE}.W001",
        )
    ]


# --- migrate (and the test runner): the database's migration history ---------------------


@register(NAMESPACE, Tags.database)
def check_migration_history(app_configs, databases=None, **kwargs):
    """The old package's migration rows (0002-0009 beside a shared 0001) mean its schema, not ours.

    Its ``0001_initial`` shares our name, so ``migrate`` would treat our tables as created and
    every query would fail on missing columns. Tagged ``database``: ``migrate`` runs it on the
    alias it migrates, before touching anything.
    """
    if not databases:  # Django passes the aliases only where it may query them
        return []
    from . import legacy

    ours = legacy.own_migration_names()
    if not ours:  # migrations disabled for this app (MIGRATION_MODULES = None)
        return []
    messages = []
    for alias in databases:
        if not router.allow_migrate(alias, legacy.APP_LABEL):
            continue
        old = legacy.old_migrations(alias, ours)
        if old:
            messages.append(
                Error(
                    f"Database '{alias}' holds the old django-aws-api-gateway-websockets schema "
                    f"(migrations {', '.join(old)} applied), not this package's.",
                    hint=f"Run `manage.py upgrade_from_old_package --database {alias}`: it saves the rows to a "
                    "fixture, recreates the tables and loads them back (docs/upgrading.md).",
                    id=f"{NAMESPACE}.E038",
                )
            )
    return messages


# --- check --deploy: settings ---------------------------------------------------------


@register(NAMESPACE, deploy=True)
def check_deploy_views(app_configs, **kwargs):
    return [
        Warning(
            f"Connect rate limiting is disabled on {view.__name__}.",
            hint="Keep RATE_LIMIT_ENABLED = True in production; tune RATE_LIMIT_MAX_ATTEMPTS instead.",
            id=f"{NAMESPACE}.W003",
        )
        for view in _websocket_views()
        if not view.RATE_LIMIT_ENABLED
    ]


@register(NAMESPACE, deploy=True)
def check_deploy_origin(app_configs, **kwargs):
    return [
        Warning(
            f"{view.__name__} does not check the Origin header (CHECK_ORIGIN = False).",
            hint="Any web page a logged-in user visits could open a socket as that user: keep CHECK_ORIGIN = True "
            "and list the pages' origins in CSRF_TRUSTED_ORIGINS.",
            id=f"{NAMESPACE}.W047",
        )
        for view in _websocket_views()
        if not view.CHECK_ORIGIN
    ]


@register(NAMESPACE, deploy=True)
def check_deploy_lifetimes(app_configs, **kwargs):
    messages = []
    expiry = _setting("token_expiry_seconds")
    if expiry > MAX_TOKEN_EXPIRY_SECONDS:
        messages.append(
            Warning(
                f'WEBSOCKETS["token_expiry_seconds"] is {expiry}: a token stays usable for over an hour.',
                hint="A token is fetched just before the connect: keep it short-lived (the default is 60).",
                id=f"{NAMESPACE}.W048",
            )
        )
    cache, grace = _setting("gateway_cache_seconds"), _setting("secret_grace_seconds")
    if cache > grace:
        messages.append(
            Warning(
                f'WEBSOCKETS["gateway_cache_seconds"] ({cache}) is longer than WEBSOCKETS["secret_grace_seconds"] '
                f"({grace}): after a secret rotation a process may keep a stale record past the grace period "
                "and reject every connect.",
                hint="Keep gateway_cache_seconds at most secret_grace_seconds (defaults: 30 and 3600).",
                id=f"{NAMESPACE}.W050",
            )
        )
    return messages


def _rate_limit_problem(max_attempts, window_minutes):
    """Why ``max_attempts`` per ``window_minutes`` cannot limit connects (``None``: it can)."""
    if not all(type(n) in (int, float) for n in (max_attempts, window_minutes)):
        return None  # not numbers: nothing this check can judge
    if window_minutes <= 0:
        return f"a window of {window_minutes} minutes counts no attempts"
    if max_attempts / window_minutes > MAX_CONNECTS_PER_MINUTE:
        return (
            f"{max_attempts} attempts per {window_minutes} minute(s) is over {MAX_CONNECTS_PER_MINUTE} a minute "
            "per source IP"
        )
    return None


@register(NAMESPACE, deploy=True)
def check_deploy_rate_limits(app_configs, **kwargs):
    """A connect rate limit (settings, or a served view's own) that cannot stop a flood."""
    hint = (
        f"Allow at most {MAX_CONNECTS_PER_MINUTE} connects a minute per source IP in a window of at least one "
        "minute (defaults: 20 per 1 minute)."
    )
    setting_max, setting_window = _setting("rate_limit_max_attempts"), _setting("rate_limit_window_minutes")
    messages = []
    problem = _rate_limit_problem(setting_max, setting_window)
    if problem:
        messages.append(
            Warning(
                f'WEBSOCKETS["rate_limit_max_attempts"] and ["rate_limit_window_minutes"] cannot limit connects: {problem}.',
                hint=hint,
                id=f"{NAMESPACE}.W049",
            )
        )
    for view in _websocket_views():
        own_max, own_window = view.RATE_LIMIT_MAX_ATTEMPTS, view.RATE_LIMIT_WINDOW_MINUTES
        if not view.RATE_LIMIT_ENABLED or not (own_max or own_window):
            continue  # W003, or the settings above
        # As ratelimit.check_connect_rate: a view's falsy value means the setting.
        problem = _rate_limit_problem(own_max or setting_max, own_window or setting_window)
        if problem:
            messages.append(
                Warning(
                    f"The connect rate limit of {view.__name__} (RATE_LIMIT_MAX_ATTEMPTS = {own_max}, "
                    f"RATE_LIMIT_WINDOW_MINUTES = {own_window}) cannot limit connects: {problem}.",
                    hint=hint,
                    id=f"{NAMESPACE}.W049",
                )
            )
    return messages


# Cache backends whose incr is atomic on a server every process shares.
SHARED_ATOMIC_CACHES = (
    "django.core.cache.backends.redis.RedisCache",
    "django.core.cache.backends.memcached.PyMemcacheCache",
    "django.core.cache.backends.memcached.PyLibMCCache",
    "django_redis.cache.RedisCache",
)
# Shared, but incr is a read then a write (two processes can both pass the limit), or not
# stored at all (dummy: every add succeeds, so nothing is ever limited).
NON_ATOMIC_CACHES = (
    "django.core.cache.backends.db.DatabaseCache",
    "django.core.cache.backends.filebased.FileBasedCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def _rate_limit_cache_backend():
    """``(alias, BACKEND path or None)`` of ``WEBSOCKETS["rate_limit_cache"]``; alias "": database."""
    alias = _setting("rate_limit_cache")
    if not alias:
        return "", None
    entry = getattr(settings, "CACHES", {}).get(alias)
    return alias, (entry or {}).get("BACKEND") if isinstance(entry, dict) else None


@register(NAMESPACE)
def check_rate_limit_cache(app_configs, **kwargs):
    """The cache the connect rate limiter counts in must exist (else every connect fails)."""
    alias, backend = _rate_limit_cache_backend()
    if not alias or backend:
        return []
    return [
        Error(
            f'WEBSOCKETS["rate_limit_cache"] is {alias!r}, which is not a CACHES alias: every connect would fail.',
            hint="Name an alias of CACHES (a Redis or Memcached cache), or remove the key to count in the database.",
            id=f"{NAMESPACE}.E054",
        )
    ]


@register(NAMESPACE, deploy=True)
def check_deploy_rate_limit_cache(app_configs, **kwargs):
    """A rate-limit cache that is not shared by the processes, or whose incr is not atomic."""
    alias, backend = _rate_limit_cache_backend()
    if not backend or backend in SHARED_ATOMIC_CACHES:
        return []
    if backend == "django.core.cache.backends.locmem.LocMemCache":
        why = "a local-memory cache is per process: each worker counts on its own, so N workers admit N times the limit"
    elif backend in NON_ATOMIC_CACHES:
        why = f"{backend.rsplit('.', 1)[-1]} has no atomic incr (or keeps nothing): concurrent connects can all pass the limit"
    else:
        why = f"{backend} is not known to be shared by every process with an atomic incr"
    return [
        Warning(
            f'WEBSOCKETS["rate_limit_cache"] = {alias!r}: {why}.',
            hint="Point it at a Redis (django.core.cache.backends.redis.RedisCache) or Memcached cache every process "
            "shares, or remove the key: the database counter is atomic and needs nothing else (docs/rate-limiting.md).",
            id=f"{NAMESPACE}.W053",
        )
    ]


@register(NAMESPACE, deploy=True)
def check_credentials(app_configs, **kwargs):
    try:
        if aws._get_session().get_credentials() is not None:
            return []
    except ImproperlyConfigured:
        return []  # E003 already says why
    return [
        Warning(
            "No AWS credentials can be resolved: sending and provisioning will fail.",
            hint="Attach an IAM role (recommended), or set AWS_IAM_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.",
            id=f"{NAMESPACE}.W010",
        )
    ]


@register(NAMESPACE, deploy=True)
def check_django_settings(app_configs, **kwargs):
    messages = []
    if settings.DEBUG:
        messages.append(Warning("DEBUG is on.", hint="Set DEBUG = False in production.", id=f"{NAMESPACE}.W020"))
    for name in ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
        if not getattr(settings, name, False):
            messages.append(
                Warning(
                    f"{name} is False.",
                    hint=f"Set {name} = True: tokens are fetched with these cookies.",
                    id=f"{NAMESPACE}.W021",
                )
            )
    insecure = [o for o in getattr(settings, "CSRF_TRUSTED_ORIGINS", []) if not o.startswith("https://")]
    if insecure:
        messages.append(
            Warning(
                f"CSRF_TRUSTED_ORIGINS lists non-https origins: {', '.join(insecure)}.",
                hint="Pages on these origins may fetch tokens and open sockets ($connect checks Origin "
                "against this list); list https origins only.",
                id=f"{NAMESPACE}.W022",
            )
        )
    return messages


# --- check --deploy: database -----------------------------------------------------------


# Not tagged Tags.database: Django 6 skips such checks unless --database is given, and these
# are what `check --deploy` is for. Deploy checks never run at runserver/migrate/test start.
@register(NAMESPACE, deploy=True)
def check_database(app_configs, databases=None, **kwargs):
    """Records, secrets, endpoints, cleanup and stale sessions, per database alias.

    Never fails the command: before ``migrate`` (or without a database) it says it skipped.
    """
    from .models import ApiGateway

    aliases = databases or [router.db_for_read(ApiGateway)]
    messages = []
    for alias in aliases:
        if not router.allow_migrate_model(alias, ApiGateway):
            continue
        try:
            # A savepoint: a missing table must not break an enclosing transaction (PostgreSQL).
            with transaction.atomic(using=alias):
                messages += _record_messages(alias)
                messages += _cleanup_messages(alias)
                messages += _stale_messages(alias)
        except DatabaseError as exc:
            messages.append(
                Info(
                    f"Database checks skipped on '{alias}': {exc}",
                    hint="Run migrate, then check --deploy again.",
                    id=f"{NAMESPACE}.I039",
                )
            )
    return messages


def _record_messages(alias):
    from .models import ApiGateway

    records = list(ApiGateway.objects.using(alias).prefetch_related("additional_routes"))
    if not records:
        return [
            Warning(
                "No ApiGateway record exists.",
                hint="Create one in the admin (target_base_endpoint = https://<your site>/ws/), "
                "then run create_api_gateway --pk N.",
                id=f"{NAMESPACE}.W030",
            )
        ]
    messages = _shared_secret_messages(records)
    for record in records:
        name = f"ApiGateway '{record.api_name}' (pk {record.pk})"
        if _is_development_record(record):
            # runwsgateway's own development record (or a companion of an AWS one): nothing a
            # deployed site uses, so the production checks below do not apply to it.
            messages.append(
                Info(
                    f"{name} is a local development record (never created in AWS); runwsgateway plays it.",
                    hint="Harmless in production; delete it if this database never runs runwsgateway.",
                    id=f"{NAMESPACE}.I052",
                )
            )
            continue
        if aws.is_local_endpoint(record.management_endpoint_url):
            messages.append(
                Warning(
                    f"{name} sends through a local gateway ({record.management_endpoint_url}).",
                    hint="A record that exists in AWS must send to AWS: clear management_endpoint_url.",
                    id=f"{NAMESPACE}.W037",
                )
            )
        elif not (record.api_created and record.deployment_id):
            messages.append(
                Warning(
                    f"{name} is not created and deployed in AWS.",
                    hint=f"Run create_api_gateway --pk {record.pk}.",
                    id=f"{NAMESPACE}.W031",
                )
            )
        if record.accepts_legacy_secret_header:
            messages.append(
                Warning(
                    f"{name} still accepts the 4.1.0 secret header X-Ws-Gateway-Secret (upgraded; integrations not re-synced).",
                    hint=f"Run sync_api_gateway --pk {record.pk}: it maps X-Gateway-Secret on every integration, deploys, "
                    "and stops accepting the old header.",
                    id=f"{NAMESPACE}.W051",
                )
            )
        if not record.integration_secret:
            messages.append(
                Warning(
                    f"{name} has no integration secret: anyone who knows its api id can call your view.",
                    hint=f"Run sync_api_gateway --pk {record.pk} --rotate-secret.",
                    id=f"{NAMESPACE}.W032",
                )
            )
        elif len(record.integration_secret) < MIN_SECRET_LENGTH:
            messages.append(
                Warning(
                    f"{name} has an integration secret of {len(record.integration_secret)} characters, "
                    f"shorter than {MIN_SECRET_LENGTH}: it can be guessed.",
                    hint=f"Run sync_api_gateway --pk {record.pk} --rotate-secret (a new secret has 43 characters).",
                    id=f"{NAMESPACE}.W045",
                )
            )
        targets = [("target_base_endpoint", record.target_base_endpoint)]
        targets += [(f"route '{route.route_key}'", route.integration_url) for route in record.additional_routes.all()]
        for label, url in targets:
            messages += _target_messages(f"{name} {label}", url)
        messages += _token_origin_messages(name, record.target_base_endpoint)
        undeployed = [route.route_key for route in record.additional_routes.all() if not route.deployed]
        if record.api_created and undeployed:
            messages.append(
                Warning(
                    f"{name} has routes not deployed in AWS: {', '.join(undeployed)}.",
                    hint=f"Run sync_api_gateway --pk {record.pk}.",
                    id=f"{NAMESPACE}.W036",
                )
            )
    return messages


def _shared_secret_messages(records):
    """Records sharing one integration secret: each API could pass for the others. Never prints it."""
    by_secret: dict[str, list[int]] = {}
    for record in records:
        if record.integration_secret:
            by_secret.setdefault(record.integration_secret, []).append(record.pk)
    messages = []
    for pks in by_secret.values():
        if len(pks) > 1:
            pks = sorted(pks)
            messages.append(
                Warning(
                    f"ApiGateway records {', '.join(map(str, pks))} share one integration secret: a request "
                    "from any of these APIs passes for the others.",
                    hint="Give each its own: run sync_api_gateway --pk N --rotate-secret for N in "
                    f"{', '.join(map(str, pks[1:]))}.",
                    id=f"{NAMESPACE}.W046",
                )
            )
    return messages


def _is_development_record(record):
    """A record runwsgateway made (its ``local…`` api id) or is serving (a loopback endpoint),
    never created in AWS. A production record not created yet is not one (W031 applies)."""
    return is_local_record(record) and (
        record.api_id.startswith(LOCAL_API_ID_PREFIX) or is_loopback_url(record.management_endpoint_url)
    )


def _target_messages(name, url):
    """API Gateway must reach Django over https, on a host Django accepts."""
    if not url:
        return []
    target = urlsplit(url)
    messages: list[CheckMessage] = []
    if target.scheme != "https":
        messages.append(
            Warning(
                f"{name} ({url}) is not https.", hint="API Gateway must call Django over HTTPS.", id=f"{NAMESPACE}.W033"
            )
        )
    if target.hostname and not validate_host(target.hostname, settings.ALLOWED_HOSTS):
        messages.append(
            Error(
                f"{name}: host '{target.hostname}' is not in ALLOWED_HOSTS.",
                hint="Add it: Django would answer every API Gateway call with 400.",
                id=f"{NAMESPACE}.E034",
            )
        )
    return messages


def _token_origin_messages(name, url):
    """The site serving the views also serves the token view, which is CSRF-protected."""
    host = urlsplit(url or "").hostname
    if not host:
        return []
    origin = f"https://{host}"
    trusted = getattr(settings, "CSRF_TRUSTED_ORIGINS", [])
    if any(security._trusted_origin_matches(origin, entry.lower()) for entry in trusted):
        return []
    return [
        Warning(
            f"CSRF_TRUSTED_ORIGINS does not cover {origin}, the site of {name}'s views and token view.",
            hint=f'Add "{origin}" (and the origin of any other page that fetches tokens) to CSRF_TRUSTED_ORIGINS: '
            "behind a TLS-terminating proxy Django's CSRF check needs it for the token POST.",
            id=f"{NAMESPACE}.W035",
        )
    ]


def _cleanup_messages(alias):
    from .models import CleanupRun

    since = timezone.now() - CLEANUP_MAX_AGE
    recent = set(
        CleanupRun.objects.using(alias)
        .filter(ran_at__gte=since, command__in=CLEANUP_COMMANDS)
        .values_list("command", flat=True)
    )
    missing = [command for command in CLEANUP_COMMANDS if command not in recent]
    if not missing:
        return []
    return [
        Warning(
            f"{' and '.join(missing)} did not run in the last 24 hours.",
            hint="Schedule clear_websocket_sessions --stale --older-than 1 and cleanup_websocket_tokens "
            "(docs/production.md, Scheduled cleanup).",
            id=f"{NAMESPACE}.W040",
        )
    ]


def _stale_messages(alias):
    from .models import WebSocketSession

    cutoff = timezone.now() - timedelta(seconds=protocol.MAX_CONNECTION_SECONDS)
    stale = WebSocketSession.objects.using(alias).connected().filter(created_on__lt=cutoff).count()
    if not stale:
        return []
    return [
        Warning(
            f"{stale} session(s) are still marked connected after API Gateway's 2-hour cap (missed $disconnect).",
            hint="Broadcasts try them in vain: run clear_websocket_sessions --stale, and schedule it.",
            id=f"{NAMESPACE}.W041",
        )
    ]


# --- check: the local origin trap (a DEBUG project's own page refused) -----------------

LOCAL_ORIGINS = ("http://127.0.0.1:8000", "http://localhost:8000")  # runserver's default address


def _local_twin_missing(missing, views):
    """W080 when one name of the local server is trusted and the other is not."""
    if not missing:
        return []
    listed = ", ".join(f'"{origin}"' for origin in missing)
    return [
        Warning(
            f"DEBUG is on and CSRF_TRUSTED_ORIGINS does not list {listed}: a page opened at {missing[0]} (the "
            f'same runserver, by its other name) will have every WebSocket connect refused (403 "Origin not '
            f'allowed.") by {", ".join(view.__name__ for view in views)}.',
            hint=f"Add {listed} to CSRF_TRUSTED_ORIGINS: 127.0.0.1 and localhost are two origins to a browser.",
            id=f"{NAMESPACE}.W080",
        )
    ]


@register(NAMESPACE)
def check_local_origin(app_configs, **kwargs):
    """With ``DEBUG``, a page served by ``runserver`` opens its socket with ``Origin:
    http://127.0.0.1:8000``; unless ``CSRF_TRUSTED_ORIGINS`` lists it, every ``$connect`` is
    refused (403 "Origin not allowed.") and nothing else says why. No database access."""
    if not settings.DEBUG:
        return []
    views = [view for view in _websocket_views() if getattr(view, "CHECK_ORIGIN", True)]
    if not views:
        return []
    trusted = getattr(settings, "CSRF_TRUSTED_ORIGINS", None) or []
    if not isinstance(trusted, (list, tuple)):
        return []
    ports = set()
    for value in trusted:  # any loopback http origin listed: the developer has chosen their port
        parsed = security.parse_origin(value) if isinstance(value, str) else None
        if parsed and parsed.scheme == "http" and parsed.host in ("127.0.0.1", "localhost", "[::1]", "::1"):
            ports.add(parsed.port)
    if ports:
        # runserver answers both names, and a browser sends the one typed: two origins.
        twins = [f"http://{host}:{port}" for port in sorted(ports) for host in ("127.0.0.1", "localhost")]
        return _local_twin_missing([origin for origin in twins if not security.origin_allowed(origin)], views)
    missing = [origin for origin in LOCAL_ORIGINS if not security.origin_allowed(origin)]
    if not missing:
        return []
    listed = ", ".join(f'"{origin}"' for origin in missing)
    return [
        Warning(
            f"DEBUG is on and CSRF_TRUSTED_ORIGINS does not list the local origin {missing[0]}: a page served by "
            f'runserver will have every WebSocket connect refused (403 "Origin not allowed.") by '
            f"{', '.join(view.__name__ for view in views)}.",
            hint=f"Add to your settings: CSRF_TRUSTED_ORIGINS = [{listed}] (keep any origins you already list; use "
            "the port runserver listens on if it is not 8000).",
            id=f"{NAMESPACE}.W080",
        )
    ]
