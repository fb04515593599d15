"""The Lambda proxy integration (docs/lambda.md): ``WEBSOCKETS["lambda_view_path"]`` names the
``WebSocketView`` the Lambda handler runs events through (E095). Checked when the key is set,
and under ``--deploy`` when a record uses ``AWS_PROXY``."""

from django.core.checks import register
from django.urls import Resolver404, resolve

from .. import protocol
from .common import _setting
from .messages import NAMESPACE, Template

E095 = Template(
    "E095",
    'WEBSOCKETS["lambda_view_path"] is {path!r}, but {url!r} {problem}: the Lambda handler runs every '
    "$connect there, so each one would be answered 404 (or by another view).",
    hint='Set it to the path of your WebSocketView\'s URL pattern ``<prefix><slug:route>``, e.g. "/ws/".',
)


def lambda_view_problem(path: str) -> tuple[str, str] | None:
    """``(url, what is wrong)`` when ``path`` + ``connect`` is not served by a ``WebSocketView``."""
    from ..views import WebSocketView

    url = protocol.integration_url(path, "$connect")
    if not url.startswith("/"):
        return url, "is not a path (it must start with /)"
    try:
        match = resolve(url)
    except Resolver404:
        return url, "matches no URL pattern"
    view_class = getattr(match.func, "view_class", None)
    if not (isinstance(view_class, type) and issubclass(view_class, WebSocketView)):
        return url, f"is served by {getattr(match.func, '__name__', match.func)!r}, not a WebSocketView"
    return None


def _check(path: str) -> list:
    problem = lambda_view_problem(path)
    return [E095(path=path, url=problem[0], problem=problem[1])] if problem else []


@register(NAMESPACE)
def check_lambda_view_path(app_configs, **kwargs):
    """Set explicitly: the path must be served by a ``WebSocketView``. No database access."""
    from django.conf import settings

    user = getattr(settings, "WEBSOCKETS", None)
    if not isinstance(user, dict) or user.get("lambda_view_path") is None:
        return []
    return _check(_setting("lambda_view_path"))


def lambda_record_messages(alias: str) -> list:
    """Under ``--deploy`` (checks.database, per alias): a record uses the Lambda integration, so
    its events need the (default) path served."""
    from django.conf import settings

    from ..models import ApiGateway, IntegrationType

    user = getattr(settings, "WEBSOCKETS", None)
    if isinstance(user, dict) and user.get("lambda_view_path") is not None:
        return []  # check_lambda_view_path reports it
    if not ApiGateway.objects.using(alias).filter(integration_type=IntegrationType.AWS_PROXY).exists():
        return []
    return _check(_setting("lambda_view_path"))
