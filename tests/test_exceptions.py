"""``exceptions.WebSocketsError``, the root of the package's exceptions: each class is one, keeps
the bases it had before the root existed, and is importable where it always was."""

import importlib

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_aws_api_gateway_websockets.exceptions import WebSocketsError

PACKAGE = "django_aws_api_gateway_websockets"


@pytest.mark.parametrize(
    ("module", "name", "bases"),
    [
        ("aws", "RegionNotConfigured", (ImproperlyConfigured, RuntimeError)),
        ("backends", "InvalidSendBackend", (ImproperlyConfigured, ValueError)),
        ("sending", "MessageTooLarge", (ValueError,)),
        ("sending", "CloseFailed", ()),
        ("provisioning", "ProvisioningError", ()),
        ("provisioning.base", "ProvisioningError", ()),
        ("upgrade", "UpgradeError", ()),
        ("upgrade", "UpgradeStopped", ()),
    ],
)
def test_each_exception_is_a_websockets_error_and_keeps_its_bases(module, name, bases):
    cls = getattr(importlib.import_module(f"{PACKAGE}.{module}"), name)
    assert issubclass(cls, WebSocketsError)
    assert all(issubclass(cls, base) for base in bases)


def test_a_message_too_large_is_caught_as_the_package_s_error():
    from django_aws_api_gateway_websockets.sending import encode_message

    with pytest.raises(WebSocketsError, match="128|bytes"):
        encode_message("x" * 2_000_000)


def test_rejection_is_control_flow_not_a_websockets_error():
    """``views.Rejection`` is how a step or a handler answers 4xx, not an error raised for you to
    catch: a handler's ``except WebSocketsError`` around a send must not swallow a refusal raised
    by a helper inside it (docs/api.md#exceptions)."""
    from django_aws_api_gateway_websockets.views import Rejection

    assert not issubclass(Rejection, WebSocketsError)
    with pytest.raises(Rejection):
        try:
            raise Rejection(403, "Permission denied.")
        except WebSocketsError:  # pragma: no cover - the point: not reached
            pass
