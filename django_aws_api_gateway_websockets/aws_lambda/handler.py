"""The Lambda handler: one API Gateway WebSocket event (``AWS_PROXY``) in, one Django request
through the project's URLconf and middleware to its ``WebSocketView``, ``{statusCode, body}``
out (docs/lambda.md).

The request is the one the HTTP integration would have posted (the same path, query string,
browser headers, ``connectionId``, API id and source IP), so the view runs the same checks and
writes the same rows and signals. What differs is the proof of origin: instead of the
``X-Gateway-Secret`` header, ``request.META`` holds a ``security.LambdaInvocation`` (an object no
HTTP request can carry), and ``pipeline.connection.authenticate_gateway`` accepts it for a
record whose ``integration_type`` is ``AWS_PROXY`` and whose API id is the event's.
"""

import base64
import binascii
import io
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from .. import protocol, security

logger = logging.getLogger("django_aws_api_gateway_websockets.aws_lambda")

# Header names a WSGI server would take (an RFC 7230 token without "_": gunicorn and nginx drop
# those, as "X_Source_Ip" and "X-Source-Ip" would both become HTTP_X_SOURCE_IP).
HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^`|~0-9A-Za-z-]+")
# requestContext.domainName: a host name or address (the local gateway's may carry a port).
HOST_RE = re.compile(r"[A-Za-z0-9.:\[\]-]{1,255}")
# The headers the handler sets itself from requestContext: a client's own never passes.
OWN_HEADERS = {
    "HOST",
    "CONTENT_LENGTH",
    "CONNECTIONID",
    "X_SOURCE_IP",
    "X_AMZN_APIGATEWAY_API_ID",
    "X_GATEWAY_SECRET",
    "X_WS_GATEWAY_SECRET",
}


# The response headers the handler's answer carries.
ANSWER_HEADERS = ("Content-Type", "Sec-WebSocket-Protocol")


class MalformedEvent(ValueError):
    """The event is not one API Gateway sends (answered 400, nothing runs)."""


def _text(value: Any, what: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise MalformedEvent(f"{what} must be a string")
    return value


def _multi_values(event: dict[str, Any], multi_key: str, single_key: str, what: str) -> list[tuple[str, str]]:
    """``(name, value)`` pairs of ``multiValue*`` (every value), else of the single form."""
    multi, single = event.get(multi_key), event.get(single_key)
    pairs: list[tuple[str, str]] = []
    if multi is not None:
        if not isinstance(multi, dict):
            raise MalformedEvent(f"{multi_key} must be an object")
        for name, values in multi.items():
            if not isinstance(name, str):
                raise MalformedEvent(f"{multi_key} names must be strings")
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise MalformedEvent(f"{multi_key} values must be lists of strings")
            pairs.extend((name, value) for value in values)
    elif single is not None:
        if not isinstance(single, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in single.items()
        ):
            raise MalformedEvent(f"{single_key} must be an object of strings")
        pairs.extend(single.items())
    return pairs


def route_path(view_path: str, api_id: str, route_key: str) -> str:
    """The Django path an event of ``route_key`` runs through: the view's path and the route's
    segment (``connect``, ``disconnect``, ``default``), or a custom route's ``integration_url``
    (its path), as the HTTP integration posts them."""
    if route_key in protocol.ROUTE_KEYS:
        return protocol.integration_url(view_path, route_key)
    from ..gateway_lookup import additional_route_url  # the ORM: after Django's setup

    url = additional_route_url(api_id, route_key)
    if url:
        return urlsplit(url).path or "/"
    # No additional route recorded: API Gateway only invokes routes it has, so the view decides.
    return protocol.integration_url(view_path, "$default")


def build_environ(event: Any, view_path: str) -> dict[str, Any]:
    """The WSGI environ of the request the HTTP integration would send for ``event``."""
    if not isinstance(event, dict):
        raise MalformedEvent("the event must be an object")
    context = event.get("requestContext")
    if not isinstance(context, dict):
        raise MalformedEvent("requestContext must be an object")
    route_key = _text(context.get("routeKey"), "requestContext.routeKey")
    api_id = _text(context.get("apiId"), "requestContext.apiId")
    connection_id = _text(context.get("connectionId"), "requestContext.connectionId")
    if not protocol.is_valid_api_id(api_id):
        raise MalformedEvent("requestContext.apiId is not an API id")
    if not protocol.is_valid_connection_id(connection_id):
        raise MalformedEvent("requestContext.connectionId is not a connection id")
    identity = context.get("identity") or {}
    if not isinstance(identity, dict):
        raise MalformedEvent("requestContext.identity must be an object")
    source_ip = _text(identity.get("sourceIp"), "requestContext.identity.sourceIp", required=False)
    domain_name = _text(context.get("domainName"), "requestContext.domainName", required=False)
    stage = _text(context.get("stage"), "requestContext.stage", required=False)
    if not domain_name or not HOST_RE.fullmatch(domain_name):
        raise MalformedEvent("requestContext.domainName is not a host name")

    body_text = _text(event.get("body"), "body", required=False)
    encoded = event.get("isBase64Encoded", False)
    if not isinstance(encoded, bool):
        raise MalformedEvent("isBase64Encoded must be a boolean")
    try:
        body = base64.b64decode(body_text, validate=True) if encoded else body_text.encode("utf-8")
    except (binascii.Error, ValueError):
        raise MalformedEvent("body is not base64") from None
    except UnicodeEncodeError:  # a lone surrogate: no frame carries one
        raise MalformedEvent("body is not UTF-8") from None

    query = _multi_values(event, "multiValueQueryStringParameters", "queryStringParameters", "query")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": route_path(view_path, api_id, route_key),
        "QUERY_STRING": urlencode(query),
        "SERVER_NAME": domain_name,
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": source_ip or "0.0.0.0",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in _multi_values(event, "multiValueHeaders", "headers", "headers"):
        if not HEADER_NAME_RE.fullmatch(name):
            continue
        key = name.upper().replace("-", "_")
        if key in OWN_HEADERS:
            continue
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        key = "HTTP_" + key
        if key in environ:  # a repeated header: joined as a proxy joins it (RFC 9110 5.3)
            environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
        else:
            environ[key] = value
    environ.update(
        {
            "HTTP_HOST": domain_name,
            "HTTP_CONNECTIONID": connection_id,
            "HTTP_X_AMZN_APIGATEWAY_API_ID": api_id,
            security.LAMBDA_META_KEY: security.LambdaInvocation(
                api_id=api_id, connection_id=connection_id, source_ip=source_ip, domain_name=domain_name, stage=stage
            ),
        }
    )
    if source_ip:
        environ["HTTP_X_SOURCE_IP"] = source_ip
    if route_key != "$connect":
        environ["HTTP_USER_AGENT"] = protocol.USER_AGENT_PREFIX + api_id
    return environ


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
    return lambda data: None


class LambdaHandler:
    """A Lambda function's handler: ``handler(event, context)``. Django is set up on the first
    event (once per container; ``setup_seconds`` says how long it took), then every event is
    one request through Django's WSGI handler (the middleware included)."""

    def __init__(self, *, settings_module: str | None = None, view_path: str | None = None) -> None:
        self.settings_module = settings_module
        self.view_path = view_path
        self.setup_seconds: float | None = None
        self._wsgi: Callable[..., Any] | None = None
        self._lock = threading.Lock()

    def _application(self) -> Callable[..., Any]:
        wsgi = self._wsgi
        if wsgi is None:
            with self._lock:
                if self._wsgi is None:
                    started = time.perf_counter()
                    if self.settings_module:
                        os.environ.setdefault("DJANGO_SETTINGS_MODULE", self.settings_module)
                    from django.core.wsgi import get_wsgi_application

                    self._wsgi = get_wsgi_application()
                    self.setup_seconds = time.perf_counter() - started
                wsgi = self._wsgi
        assert wsgi is not None
        return wsgi

    def path(self) -> str:
        from ..conf import get_setting

        return self.view_path or get_setting("lambda_view_path")

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        wsgi = self._application()
        try:
            environ = build_environ(event, self.path())
        except MalformedEvent as exc:
            logger.warning("Malformed API Gateway event refused: %s", exc)
            return {"statusCode": 400, "body": json.dumps({"error": f"Malformed event: {exc}."})}
        response = wsgi(environ, _start_response)
        try:
            content = b"".join(response)
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()
        result: dict[str, Any] = {"statusCode": response.status_code}
        try:
            result["body"] = content.decode("utf-8")
        except UnicodeDecodeError:
            result["body"], result["isBase64Encoded"] = base64.b64encode(content).decode(), True
        # What API Gateway reads of the headers: on $connect the subprotocol it answers the handshake
        # with; the Content-Type says what the body is (the local gateway's log reads it).
        headers = {name: response[name] for name in ANSWER_HEADERS if response.has_header(name)}
        if headers:
            result["headers"] = headers
        return result


def make_handler(*, settings_module: str | None = None, view_path: str | None = None) -> LambdaHandler:
    """A handler for a function: ``settings_module`` (else ``DJANGO_SETTINGS_MODULE``), and the
    path of the ``WebSocketView`` the events run through (else ``WEBSOCKETS["lambda_view_path"]``)."""
    return LambdaHandler(settings_module=settings_module, view_path=view_path)
