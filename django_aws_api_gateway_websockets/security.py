"""Checks that decide whether an integration request is genuine and acceptable (SPEC §6).

Nothing here trusts a header a client can forge: the proof of origin is the record's
``integration_secret`` that API Gateway adds as ``X-Gateway-Secret``; the client IP is the
``X-Source-Ip`` header API Gateway fills from ``context.identity.sourceIp``.
"""

import hmac
import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from . import protocol


def secret_matches(gateway, presented):
    """Constant-time check of the ``X-Gateway-Secret`` header against the record.

    Records without a secret (data moved from the old package) are accepted;
    ``manage.py check --deploy`` warns about them.
    """
    expected = gateway.integration_secret
    if not expected:
        return True
    return hmac.compare_digest(expected.encode(), (presented or "").encode())


def source_ip(request):
    """The client's IP as API Gateway saw it, else the peer address (never X-Forwarded-For)."""
    for candidate in (request.headers.get(protocol.HEADER_SOURCE_IP), request.META.get("REMOTE_ADDR")):
        if candidate:
            try:
                return str(ipaddress.ip_address(candidate.strip()))
            except ValueError:
                continue
    return "0.0.0.0"


def _trusted_origin_matches(origin, trusted):
    """Exact origin, or Django's ``https://*.example.com`` subdomain wildcard."""
    if origin == trusted.rstrip("/"):
        return True
    parts, want = urlsplit(origin), urlsplit(trusted)
    if parts.scheme != want.scheme or not want.netloc.startswith("*."):
        return False
    suffix = want.netloc[1:]  # ".example.com"
    return parts.netloc.endswith(suffix) and len(parts.netloc) > len(suffix)


def origin_allowed(origin):
    """A browser's ``Origin`` is allowed when it is (exactly) in ``CSRF_TRUSTED_ORIGINS``,
    or is an https origin whose host is in ``ALLOWED_HOSTS``. Compared as whole origins,
    never as substrings (``https://evil-example.com`` does not pass for ``example.com``).
    """
    if not origin or origin == "null":
        return False
    origin = origin.strip().lower()
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
        return False
    for trusted in getattr(settings, "CSRF_TRUSTED_ORIGINS", []):
        if _trusted_origin_matches(origin, trusted.lower()):
            return True
    if parts.scheme == "https":
        host, _port = split_domain_port(parts.netloc)
        return bool(host) and validate_host(host, settings.ALLOWED_HOSTS)
    return False
