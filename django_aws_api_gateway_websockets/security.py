"""Checks that decide whether an integration request is genuine and acceptable (docs/security.md).

Nothing here trusts a header a client can forge: the proof of origin is the record's
``integration_secret`` that API Gateway adds as ``X-Gateway-Secret``; the client IP is the
``X-Source-Ip`` header API Gateway fills from ``context.identity.sourceIp``.
"""

import hmac
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from . import protocol
from .conf import get_setting

if TYPE_CHECKING:
    from .models import ApiGateway


@dataclass(frozen=True)
class LambdaInvocation:
    """What the Lambda handler (``aws_lambda``) knows of the API Gateway event it turned into a
    request: API Gateway invoked the function (IAM authorised it), so the event is genuine.

    Put in ``request.META[LAMBDA_META_KEY]`` by the handler only. No HTTP request can carry it:
    a WSGI server puts a header under an ``HTTP_*`` key and only ever a ``str`` value, and this
    is an instance of this class, made in the process (docs/lambda.md#trust).
    """

    api_id: str
    connection_id: str
    source_ip: str
    domain_name: str = ""
    stage: str = ""


#: The ``request.META`` key of a ``LambdaInvocation``: not an ``HTTP_*`` key, never a header's.
LAMBDA_META_KEY = "django_aws_api_gateway_websockets.lambda_invocation"
#: ``ApiGateway.integration_type`` of the Lambda proxy integration (models.IntegrationType).
AWS_PROXY = "AWS_PROXY"


def lambda_invocation(request: HttpRequest) -> LambdaInvocation | None:
    """The Lambda event behind ``request``, or ``None`` for any other request (one over HTTP)."""
    invocation = request.META.get(LAMBDA_META_KEY)
    return invocation if isinstance(invocation, LambdaInvocation) else None


def integration_trusted(gateway: "ApiGateway", request: HttpRequest) -> bool:
    """Whether ``request`` proves it comes from ``gateway``'s API Gateway integration.

    A record with the Lambda proxy integration (``AWS_PROXY``) accepts only requests the Lambda
    handler made from an event of its API; an HTTP record only requests over HTTP carrying its
    secret. Neither path's proof opens the other: an HTTP request never has the Lambda trust,
    an event never stands in for the secret of an HTTP record.
    """
    invocation = lambda_invocation(request)
    if gateway.integration_type == AWS_PROXY or invocation is not None:
        return invocation is not None and gateway.integration_type == AWS_PROXY and invocation.api_id == gateway.api_id
    return secret_matches(gateway, presented_secret(request, gateway))


def accepted_secrets(gateway: "ApiGateway", now: datetime | None = None) -> list[str]:
    """The secrets a request may carry: the record's current one, and the one it replaced
    while ``WEBSOCKETS["secret_grace_seconds"]`` after the rotation last."""
    secrets = [gateway.integration_secret] if gateway.integration_secret else []
    previous, rotated_at = gateway.previous_integration_secret, gateway.secret_rotated_at
    if previous and rotated_at:
        grace = timedelta(seconds=get_setting("secret_grace_seconds"))
        if rotated_at <= (now or timezone.now()) < rotated_at + grace:  # never for a future date
            secrets.append(previous)
    return secrets


def presented_secret(request: HttpRequest, gateway: "ApiGateway | None") -> str | None:
    """The secret an integration request carries: ``X-Gateway-Secret``; for a record upgraded
    from the 4.1.0 release whose integrations were not re-synced yet, also its header
    ``X-Ws-Gateway-Secret`` (``check --deploy`` warns while a record accepts it)."""
    presented = request.headers.get(protocol.HEADER_SECRET)
    if presented is None and gateway is not None and gateway.accepts_legacy_secret_header:
        presented = request.headers.get(protocol.HEADER_LEGACY_SECRET)
    return presented


def secret_matches(gateway: "ApiGateway", presented: str | None) -> bool:
    """Constant-time check of the ``X-Gateway-Secret`` header against the record.

    Records without a secret (data moved from the old package) are accepted;
    ``manage.py check --deploy`` warns about them.
    """
    if not gateway.integration_secret:
        return True
    given = (presented or "").encode()
    # Every candidate is compared (no early exit): the time taken says nothing about which matched.
    matches = [hmac.compare_digest(secret.encode(), given) for secret in accepted_secrets(gateway)]
    return any(matches)


def source_ip(request: HttpRequest, gateway: "ApiGateway | None" = None) -> str:
    """The client's IP as API Gateway saw it, else the peer address (never X-Forwarded-For).

    ``X-Source-Ip`` is trusted only where our integrations map it: not on a record still
    using the 4.1.0 integrations (authenticated by the old header), which do not map it, so
    that the client's own handshake header would pass through.
    """
    invocation = lambda_invocation(request)
    if invocation is not None:  # requestContext.identity.sourceIp, as API Gateway saw it
        candidates: tuple[str | None, ...] = (invocation.source_ip,)
    else:
        candidates = (_mapped_source_ip(request, gateway), request.META.get("REMOTE_ADDR"))
    for candidate in candidates:
        if candidate:
            try:
                return str(ipaddress.ip_address(candidate.strip()))
            except ValueError:
                continue
    return "0.0.0.0"


def _mapped_source_ip(request: HttpRequest, gateway: "ApiGateway | None") -> str | None:
    mapped = request.headers.get(protocol.HEADER_SOURCE_IP)
    if (
        gateway is not None
        and gateway.accepts_legacy_secret_header
        and request.headers.get(protocol.HEADER_SECRET) is None
    ):
        mapped = None
    return mapped


class Origin(NamedTuple):
    """A web origin as browsers compare them: scheme, host and port (the default one filled in)."""

    scheme: str
    host: str
    port: int


DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(value: object, *, wildcard: bool = False) -> Origin | None:
    """``Origin`` of ``scheme://host[:port]``, or ``None`` for anything else (a path, user info,
    a bad port, an empty host). With ``wildcard``, the host may start with ``*.``."""
    if not isinstance(value, str):
        return None
    value = value.strip().lower().rstrip("/")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or parts.path or parts.query or parts.fragment:
        return None
    if "@" in parts.netloc or not parts.hostname:
        return None
    host = parts.hostname
    if host.startswith("*."):
        if not wildcard or not _is_host(host[2:]):
            return None
    elif not _is_host(host):
        return None
    return Origin(parts.scheme, host, port or DEFAULT_PORTS[parts.scheme])


def _is_host(host: str) -> bool:
    """A DNS name (letters, digits, '-' and dots) or an IP address; nothing else."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    labels = host.split(".")
    return all(label and len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii() for label in labels)


def _trusted_origin_matches(origin: "Origin | str | None", trusted: str) -> bool:
    """Exact origin, or Django's ``https://*.example.com`` wildcard: any sub-domain of
    example.com (not example.com itself), same scheme and port. Both are parsed first."""
    parsed = origin if isinstance(origin, Origin) else parse_origin(origin)
    entry = parse_origin(trusted, wildcard=True)
    if parsed is None or entry is None or (parsed.scheme, parsed.port) != (entry.scheme, entry.port):
        return False
    if entry.host.startswith("*."):
        return parsed.host.endswith(entry.host[1:])
    return parsed.host == entry.host


def origin_allowed(origin: str | None) -> bool:
    """A browser's ``Origin`` is allowed when ``CSRF_TRUSTED_ORIGINS`` lists it (exactly, or
    through a sub-domain wildcard), or when it is ``https://<host>`` on the default port for
    an exact (non-wildcard) host in ``ALLOWED_HOSTS``. ``ALLOWED_HOSTS`` wildcards (``*``,
    ``.example.com``) never make an origin trusted: they say which Host headers Django
    answers, not which sites may open sockets.
    """
    parsed = parse_origin(origin)
    if parsed is None:
        return False
    for trusted in getattr(settings, "CSRF_TRUSTED_ORIGINS", []):
        if _trusted_origin_matches(parsed, trusted):
            return True
    if (parsed.scheme, parsed.port) != ("https", 443):
        return False
    exact_hosts = {host.lower() for host in settings.ALLOWED_HOSTS if host and host[0] not in ".*"}
    return parsed.host in exact_hosts
