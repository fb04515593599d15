"""Django behind API Gateway's Lambda proxy integration (``AWS_PROXY``; docs/lambda.md).

Point the function's handler at ``django_aws_api_gateway_websockets.aws_lambda.handler`` (with
``DJANGO_SETTINGS_MODULE`` in its environment), or at a handler of your own made by
``make_handler(settings_module=..., view_path=...)``. ``build_event`` builds the events API
Gateway sends (the local gateway and ``testing.lambda_event`` use it).
"""

from typing import TYPE_CHECKING, Any

from .events import build_event

if TYPE_CHECKING:
    from .handler import LambdaHandler

__all__ = ["build_event", "handler", "make_handler"]

_default: "LambdaHandler | None" = None


def make_handler(*, settings_module: str | None = None, view_path: str | None = None) -> "LambdaHandler":
    """A Lambda handler (``handler(event, context)``); see ``handler.LambdaHandler``."""
    from .handler import make_handler as make

    return make(settings_module=settings_module, view_path=view_path)


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """The default handler: ``DJANGO_SETTINGS_MODULE`` and ``WEBSOCKETS["lambda_view_path"]``."""
    global _default
    if _default is None:
        _default = make_handler()
    return _default(event, context)
