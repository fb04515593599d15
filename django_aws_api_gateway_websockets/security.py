"""Checks that decide whether an integration request is genuine and acceptable (docs/security.md).

Nothing here trusts a header a client can forge: the proof of origin is the record's
``integration_secret`` that API Gateway adds as ``X-Gateway-Secret``; the client IP is the
``X-Source-Ip`` header API Gateway fills from ``context.identity.sourceIp``.
"""

import hmac
import ipaddress
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
    mapped = request.headers.get(protocol.HEADER_SOURCE_IP)
    if (
        gateway is not None
        and gateway.accepts_legacy_secret_header
        and request.headers.get(protocol.HEADER_SECRET) is None
    ):
        mapped = None
    for candidate in (mapped, request.META.get("REMOTE_ADDR")):
        if candidate:
            try:
                return str(ipaddress.ip_address(candidate.strip()))
            except ValueError:
                continue
    return "0.0.0.0"


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
