"""AWS credentials, regions and boto3 clients: the one place that builds them.

Credential priority (the names users already set; docs/settings.md):
``AWS_IAM_PROFILE`` > ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY`` > boto3's default chain
(environment, container or instance role). Region: the record's own region, else
``AWS_GATEWAY_REGION_NAME``, else ``AWS_REGION_NAME``, else the profile's or environment's region.

Clients are cached per (service, region, endpoint) and shared across threads: boto3 clients
are thread-safe, and building one costs milliseconds (the old package built one per message).
"""

import os
import threading
from typing import Any, cast

import boto3
import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ProfileNotFound
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from .exceptions import WebSocketsError

_lock = threading.Lock()
# boto3 and botocore ship no annotations: their clients and sessions are ``Any`` here.
_clients: dict[tuple[str, str, str | None, int | None, tuple[float, float] | None], Any] = {}
_session: Any = None
_botocore_session: Any = None

CREDENTIAL_SETTINGS = ("AWS_IAM_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
REGION_SETTINGS = ("AWS_GATEWAY_REGION_NAME", "AWS_REGION_NAME")


class RegionNotConfigured(WebSocketsError, ImproperlyConfigured, RuntimeError):
    """No AWS region. A ``RuntimeError`` too: 4.x's ``get_region_name`` raised that."""


def configured_region() -> str | None:
    """The region from settings, or ``None`` when neither setting is set."""
    for name in REGION_SETTINGS:
        value = getattr(settings, name, None)
        if value:
            return cast(str, value)
    return None


def get_region_name(region: str | None = None) -> str:
    """Resolve the region for a call: explicit, settings, then the boto3 session's own."""
    region = region or configured_region() or _get_session().region_name
    if not region:
        raise RegionNotConfigured(
            "No AWS region: set AWS_GATEWAY_REGION_NAME (or AWS_REGION_NAME) in settings, "
            "or the region field of the ApiGateway record."
        )
    return region


def _get_session() -> Any:
    global _session, _botocore_session
    with _lock:
        if _session is None:
            # Our own botocore session (a public constructor argument of boto3's), so that its
            # configuration (ca_bundle, credentials) is read through botocore's public API.
            _botocore_session = botocore.session.get_session()
            profile = getattr(settings, "AWS_IAM_PROFILE", None)
            key_id = getattr(settings, "AWS_ACCESS_KEY_ID", None)
            secret = getattr(settings, "AWS_SECRET_ACCESS_KEY", None)
            if profile:
                try:
                    _session = boto3.session.Session(profile_name=profile, botocore_session=_botocore_session)
                except ProfileNotFound as exc:
                    raise ImproperlyConfigured(f"AWS_IAM_PROFILE: {exc}") from exc
            elif key_id or secret:
                if not (key_id and secret):
                    raise ImproperlyConfigured("Set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither.")
                _session = boto3.session.Session(
                    aws_access_key_id=key_id, aws_secret_access_key=secret, botocore_session=_botocore_session
                )
            else:
                _session = boto3.session.Session(botocore_session=_botocore_session)
        return _session


def get_credentials() -> Any:
    """The credentials botocore resolved for the configured session (``None``: none found).

    Refreshable when they come from a role (container, instance, assume-role profile): call
    ``get_frozen_credentials()`` per send for a current, consistent set.
    """
    return _get_session().get_credentials()


def ca_bundle() -> str:
    """The CA bundle boto3's clients verify TLS with: ``AWS_CA_BUNDLE`` / the profile's
    ``ca_bundle``, else botocore's default (certifi's bundle)."""
    _get_session()
    from botocore.httpsession import get_cert_path

    configured = _botocore_session.get_config_variable("ca_bundle")
    return cast(str, configured or get_cert_path(True))


def is_local_endpoint(endpoint_url: str | None) -> bool:
    return bool(endpoint_url and endpoint_url.startswith("http://"))


def get_client(
    service: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    max_pool_connections: int | None = None,
    timeouts: tuple[float, float] | None = None,
) -> Any:
    """A cached, thread-safe boto3 client for ``service``; ``timeouts``: ``(connect, read)`` seconds."""
    region = get_region_name(region)
    key = (service, region, endpoint_url, max_pool_connections, timeouts)
    client = _clients.get(key)
    if client is None:
        config = Config(
            # Management API calls are retried by the sender (it knows 410 from 429).
            retries={"mode": "standard", "total_max_attempts": 1 if endpoint_url else 4},
            max_pool_connections=max_pool_connections or 10,
            tcp_keepalive=True,
            **({"connect_timeout": timeouts[0], "read_timeout": timeouts[1]} if timeouts else {}),
            # A plain-http endpoint is the local gateway: it needs no AWS credentials.
            signature_version=UNSIGNED if is_local_endpoint(endpoint_url) else None,
        )
        session = _get_session()
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = session.client(service, region_name=region, endpoint_url=endpoint_url, config=config)
                _clients[key] = client
    return client


def get_boto3_client(service: str = "apigatewayv2", **kwargs: Any) -> Any:
    """Compatibility with the old package's helper of this name."""
    return get_client(service, **kwargs)


def clear_clients() -> None:
    """Forget cached clients and the session (credentials or settings changed)."""
    global _session, _botocore_session
    with _lock:
        _clients.clear()
        _session = _botocore_session = None


def _forget_after_fork() -> None:
    # boto3 clients' connection pools must not be shared with the parent process.
    global _lock, _session, _botocore_session
    _lock = threading.Lock()
    _clients.clear()
    _session = _botocore_session = None


os.register_at_fork(after_in_child=_forget_after_fork)


@receiver(setting_changed)
def _reset_on_setting_change(setting: str, **kwargs: Any) -> None:
    if setting in CREDENTIAL_SETTINGS + REGION_SETTINGS:
        clear_clients()
