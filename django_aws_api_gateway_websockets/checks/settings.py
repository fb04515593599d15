"""Settings: the ``WEBSOCKETS`` dict (its keys, types and ranges; lifetimes) and the AWS settings."""

from django.conf import settings
from django.core.checks import register
from django.core.exceptions import ImproperlyConfigured

from .. import aws, conf
from .common import SETTINGS_DOC, _setting
from .messages import NAMESPACE, Template

MAX_TOKEN_EXPIRY_SECONDS = 3600

E042 = Template(
    "E042",
    "{not_a_dict} It is {type}.",
    hint='WEBSOCKETS = {{"token_expiry_seconds": 60, ...}}: every key is optional, listed in ' + SETTINGS_DOC + ".",
)
W043 = Template("W043", "{problem}", hint=f"Remove it, or correct its name: every key is in {SETTINGS_DOC}.")
E044 = Template("E044", "{problem}", hint="Correct the value, or remove the key to use the default.")
E003 = Template("E003", "The AWS settings are invalid: {exc}")
W001 = Template(
    "W001",
    "No AWS region is configured.",
    hint="Set AWS_GATEWAY_REGION_NAME (or AWS_REGION_NAME), or a region on every ApiGateway record.",
)
W010 = Template(
    "W010",
    "No AWS credentials can be resolved: sending and provisioning will fail.",
    hint="Attach an IAM role (recommended), or set AWS_IAM_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.",
)
W048 = Template(
    "W048",
    'WEBSOCKETS["token_expiry_seconds"] is {expiry}: a token stays usable for over an hour.',
    hint="A token is fetched just before the connect: keep it short-lived (the default is 60).",
)
W050 = Template(
    "W050",
    'WEBSOCKETS["gateway_cache_seconds"] ({cache}) is longer than WEBSOCKETS["secret_grace_seconds"] '
    "({grace}): after a secret rotation a process may keep a stale record past the grace period "
    "and reject every connect.",
    hint="Keep gateway_cache_seconds at most secret_grace_seconds (defaults: 30 and 3600).",
)


@register(NAMESPACE)
def check_settings(app_configs, **kwargs):
    """The ``WEBSOCKETS`` dict itself: a dict, known keys, values of the right type and range."""
    user = getattr(settings, "WEBSOCKETS", None)
    if user is not None and not isinstance(user, dict):
        return [E042(not_a_dict=conf.NOT_A_DICT, type=type(user).__name__)]
    errors, unknown = conf.validate_settings(user)
    return [W043(problem=message) for message in unknown] + [E044(problem=message) for message in errors]


@register(NAMESPACE)
def check_region(app_configs, **kwargs):
    try:
        session = aws._get_session()
    except ImproperlyConfigured as exc:
        return [E003(exc=exc)]
    if aws.configured_region() or session.region_name:
        return []
    return [W001()]


@register(NAMESPACE, deploy=True)
def check_credentials(app_configs, **kwargs):
    try:
        if aws._get_session().get_credentials() is not None:
            return []
    except ImproperlyConfigured:
        return []  # E003 already says why
    return [W010()]


@register(NAMESPACE, deploy=True)
def check_deploy_lifetimes(app_configs, **kwargs):
    messages = []
    expiry = _setting("token_expiry_seconds")
    if expiry > MAX_TOKEN_EXPIRY_SECONDS:
        messages.append(W048(expiry=expiry))
    cache, grace = _setting("gateway_cache_seconds"), _setting("secret_grace_seconds")
    if cache > grace:
        messages.append(W050(cache=cache, grace=grace))
    return messages
