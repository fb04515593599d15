"""The connect rate limit: limits that cannot stop a flood, and the cache it counts in."""

from django.conf import settings
from django.core.checks import register

from .common import _setting, _websocket_views
from .messages import NAMESPACE, Template

MAX_CONNECTS_PER_MINUTE = 1000  # per source IP (and per user): more cannot stop a flood

_W049_HINT = (
    f"Allow at most {MAX_CONNECTS_PER_MINUTE} connects a minute per source IP in a window of at least one "
    "minute (defaults: 20 per 1 minute)."
)
W049 = Template(
    "W049",
    {
        "default": 'WEBSOCKETS["rate_limit_max_attempts"] and ["rate_limit_window_minutes"] cannot limit connects: '
        "{problem}.",
        "view": "The connect rate limit of {view} (RATE_LIMIT_MAX_ATTEMPTS = {max_attempts}, "
        "RATE_LIMIT_WINDOW_MINUTES = {window}) cannot limit connects: {problem}.",
    },
    hint=_W049_HINT,
)
E054 = Template(
    "E054",
    'WEBSOCKETS["rate_limit_cache"] is {alias!r}, which is not a CACHES alias: every connect would fail.',
    hint="Name an alias of CACHES (a Redis or Memcached cache), or remove the key to count in the database.",
)
W053 = Template(
    "W053",
    'WEBSOCKETS["rate_limit_cache"] = {alias!r}: {why}.',
    hint="Point it at a Redis (django.core.cache.backends.redis.RedisCache) or Memcached cache every process "
    "shares, or remove the key: the database counter is atomic and needs nothing else (docs/rate-limiting.md).",
)

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
    setting_max, setting_window = _setting("rate_limit_max_attempts"), _setting("rate_limit_window_minutes")
    messages = []
    problem = _rate_limit_problem(setting_max, setting_window)
    if problem:
        messages.append(W049(problem=problem))
    for view in _websocket_views():
        own_max, own_window = view.RATE_LIMIT_MAX_ATTEMPTS, view.RATE_LIMIT_WINDOW_MINUTES
        if not view.RATE_LIMIT_ENABLED or not (own_max or own_window):
            continue  # W003, or the settings above
        # As ratelimit.check_connect_rate: a view's falsy value means the setting.
        problem = _rate_limit_problem(own_max or setting_max, own_window or setting_window)
        if problem:
            messages.append(W049("view", view=view.__name__, max_attempts=own_max, window=own_window, problem=problem))
    return messages


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
    return [E054(alias=alias)]


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
    return [W053(alias=alias, why=why)]
