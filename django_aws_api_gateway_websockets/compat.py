"""The models' delegating methods: the 4.x model API (and its additions) users' code calls.

``models`` mixes these classes into its models, so ``WebSocketToken.generate_token(...)``,
``ConnectionRateLimit.check_rate_limit(...)``, ``WebSocketSession.objects.send_message(...)``
and the rest keep working; the rules live in ``tokens``, ``ratelimit``, ``sending`` and
``history``. Those modules import ``models``, so each method imports its module when it is
called: this module imports nothing from the package when loaded, and ``models`` imports
none of them (tests/test_import_graph.py checks both); the types are imported for the
type checker only.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, _User  # _User: the AUTH_USER_MODEL (django-stubs)
    from django.db.models import QuerySet

    from .history import ChannelSendResult
    from .models import ApiGateway, ConnectionRateLimit, WebSocketSession, WebSocketToken
    from .sending import SendResult

PACKAGE = "django_aws_api_gateway_websockets"
#: The release that removes what this module deprecates (CHANGELOG.md, "Deprecated").
REMOVAL_RELEASE = "6.0"
IN_MEMORY_BACKEND = f"{PACKAGE}.testing.InMemoryBackend"

#: The 4.x module-level helpers of ``models``, now in ``aws``; ``models.__getattr__`` serves them.
MOVED_FROM_MODELS = {
    "get_boto3_client": (
        # The 4.x testing docs mocked sends by patching this name: say loudly that it no longer works.
        f" Messages are no longer sent through it: patching {PACKAGE}.models.get_boto3_client intercepts no "
        "send, and a test that relies on it may post to AWS. Capture sends with "
        f'{PACKAGE}.testing.ManagementAPICapture, or set WEBSOCKETS["send_backend"] = "{IN_MEMORY_BACKEND}" '
        "in your test settings (docs/testing.md)."
    ),
    "get_region_name": "",
}


def moved_from_models(name: str) -> Any:
    """``models.<name>`` for a 4.x helper that moved to ``aws``: the ``aws`` function, with a
    DeprecationWarning. Called by ``models.__getattr__``, i.e. only for names ``models`` does
    not define, and never cached in ``models``: ``unittest.mock.patch`` sets and then deletes
    the name, which leaves the module as it was."""
    if name not in MOVED_FROM_MODELS:
        raise AttributeError(f"module '{PACKAGE}.models' has no attribute '{name}'")
    warnings.warn(
        f"{PACKAGE}.models.{name} is deprecated and will be removed in {REMOVAL_RELEASE}: "
        f"use {PACKAGE}.aws.{name}.{MOVED_FROM_MODELS[name]}",
        DeprecationWarning,
        stacklevel=3,  # the import or attribute access in the caller, past models.__getattr__
    )
    from . import aws

    return getattr(aws, name)


#: The 4.x ``WebSocketToken`` fields (and ``pk``) ``generate_token``'s result still answers.
TOKEN_ROW_ATTRIBUTES = frozenset({"pk", "id", "user", "user_id", "session_key", "created_at", "used"})
#: Those a 4.x test set on the result before ``save()`` (to spend or age a token); the session
#: key is not one: the row holds its keyed hash, so a raw key written there would match nothing.
TOKEN_ROW_WRITABLE = frozenset({"user", "user_id", "created_at", "used"})
#: The row methods 4.x code called on the result (``token.used = True; token.save()``, ...).
TOKEN_ROW_METHODS = frozenset({"save", "refresh_from_db", "delete"})


def _warn_token_attribute(name: str) -> None:
    replacement = (
        "use the returned value, the raw token (e.g. JsonResponse({'token': token}))"
        if name == "token"
        else "read the row with WebSocketToken.objects.get(token=tokens.hash_token(token))"
    )
    warnings.warn(
        f"WebSocketToken.generate_token() returns the raw token (a str) since 5.0; its .{name} is deprecated "
        f"and will be removed in {REMOVAL_RELEASE}: {replacement}.",
        DeprecationWarning,
        stacklevel=3,
    )


class IssuedToken(str):
    """What ``WebSocketToken.generate_token`` returns: the raw token, a ``str`` (5.x), that
    also answers 4.x code written for the row it returned then (``token.token``,
    ``token.user``, ...), with a DeprecationWarning. ``.token`` is the raw value, as the 4.x row
    held it; the row now holds its SHA-256."""

    _row: WebSocketToken | None

    def __new__(cls, raw: str, row: WebSocketToken | None = None) -> IssuedToken:
        issued = super().__new__(cls, raw)
        issued._row = row
        return issued

    @property
    def token(self) -> str:
        _warn_token_attribute("token")
        return str(self)

    def __getattr__(self, name: str) -> Any:
        # Only for names ``str`` lacks; any other (copy and pickle probe private ones) is missing.
        if name in TOKEN_ROW_ATTRIBUTES or name in TOKEN_ROW_METHODS:
            _warn_token_attribute(name)
            return getattr(self._row, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        # A 4.x write to the row (then ``save()``) goes to the row, not to this string.
        if name in TOKEN_ROW_WRITABLE:
            _warn_token_attribute(name)
            setattr(self._row, name, value)
        elif name in TOKEN_ROW_ATTRIBUTES:  # kept on this string it would read back as if saved
            raise AttributeError(f"the token's {name} cannot be set: the row keeps it (session_key as a keyed hash)")
        else:
            super().__setattr__(name, value)


class ApiGatewayMethods:
    """The 4.x ``ApiGateway.create_gateway()`` / ``create_custom_domain()``: they run the
    5.x provisioning (``provisioning.sync_api`` / ``provisioning.create_custom_domain``, what
    the commands run), with a DeprecationWarning. Called explicitly only: ``save()`` never
    calls AWS."""

    def create_gateway(self) -> None:
        """4.x: create the API in AWS unless ``api_created``; returns ``None``. A failed step
        raises ``provisioning.ProvisioningError`` (4.x: boto3's ``ClientError``)."""
        from . import provisioning

        _warn_moved_method("create_gateway", "provisioning.sync_api(record) or the create_api_gateway command")
        record = cast("ApiGateway", self)
        if not record.api_created:  # 4.x only created: a created API was left as it was
            provisioning.sync_api(record)

    def create_custom_domain(self) -> None:
        """4.x: create the custom domain and map it to the API; returns ``None``. 4.x's
        ``ValueError`` for an API not created or no certificate ARN is raised first."""
        from . import provisioning

        _warn_moved_method(
            "create_custom_domain", "provisioning.create_custom_domain(record) or the create_custom_domain command"
        )
        record = cast("ApiGateway", self)
        if not record.api_created:
            raise ValueError("The API needs to be created before calling this method")
        if not record.certificate_arn:
            raise ValueError("A Certificate ARN is required")
        provisioning.create_custom_domain(record)


def _warn_moved_method(name: str, replacement: str) -> None:
    warnings.warn(
        f"ApiGateway.{name}() is deprecated and will be removed in {REMOVAL_RELEASE}: use {replacement}.",
        DeprecationWarning,
        stacklevel=3,
    )


class WebSocketSessionQuerySetMethods:
    """``WebSocketSession.objects`` (and its querysets): sending to the rows."""

    if TYPE_CHECKING:  # what the queryset class (models.py) mixing this in defines

        def connected(self) -> QuerySet[WebSocketSession]: ...

    def send_message(self, data: object) -> SendResult:
        """Send ``data`` (JSON-encoded) to every connected row; returns a ``SendResult``."""
        from .sending import send_to_sessions

        return send_to_sessions(self.connected(), data)

    def send_to_channel(self, channel: str, data: object) -> ChannelSendResult:
        """Store ``data`` in ``channel``'s history (a sequence number) and send it to these
        rows' connected sessions in that channel (history.py); returns a ``ChannelSendResult``."""
        from .history import send_to_channel

        return send_to_channel(channel, data, sessions=cast("QuerySet[WebSocketSession]", self))


class WebSocketSessionMethods:
    """One ``WebSocketSession``: send to it, close it."""

    def send_message(self, data: object) -> SendResult:
        """Send ``data`` to this connection; returns a ``SendResult``."""
        from .sending import send_to_sessions

        return send_to_sessions([cast("WebSocketSession", self)], data)

    def close(self) -> bool:
        """Ask API Gateway to close this connection (DELETE @connections)."""
        from .sending import close_connection

        return close_connection(cast("WebSocketSession", self))


class WebSocketTokenMethods:
    """The 4.x ``WebSocketToken`` classmethods (tokens.py holds the rules)."""

    @classmethod
    def generate_token(cls, user: _User, session_key: str | None) -> IssuedToken:
        """Create a token; returns the raw value (shown once, to the browser): a ``str`` that
        also has the 4.x row's ``.token`` (deprecated, see ``IssuedToken``)."""
        from .tokens import create_token

        raw, row = create_token(user, session_key)
        return IssuedToken(raw, row)

    @classmethod
    def validate_and_consume(
        cls, token_value: str, session_key: str | None = None, max_age_seconds: int | None = None
    ) -> _User | None:
        """Consume a raw token; returns its user, or ``None``."""
        from .tokens import consume_token

        token = consume_token(token_value, session_key, max_age_seconds)
        return token.user if token else None

    @classmethod
    def cleanup_expired(cls, max_age_seconds: int = 300) -> tuple[int, dict[str, int]]:
        """Delete used tokens and those older than ``max_age_seconds``; returns
        ``QuerySet.delete()``'s ``(count, per model)``, as 4.x did (``n, _ = ...``)."""
        from .tokens import delete_expired_tokens

        return delete_expired_tokens(max_age_seconds)

    @classmethod
    def check_rate_limit(cls, user: _User, max_tokens_per_minute: int | None = None) -> bool:
        from .tokens import may_issue_token

        return may_issue_token(user, max_tokens_per_minute)


class ConnectionRateLimitMethods:
    """The 4.x ``ConnectionRateLimit`` classmethods (ratelimit.py holds the rules)."""

    @classmethod
    def check_rate_limit(
        cls,
        ip_address: str,
        user: _User | AnonymousUser | int | None = None,
        max_attempts: int | None = None,
        window_minutes: int | float | None = None,
    ) -> tuple[bool, int]:
        from .ratelimit import check_connect_rate

        return check_connect_rate(ip_address, user, max_attempts, window_minutes)

    @classmethod
    def record_attempt(
        cls,
        ip_address: str,
        user: _User | AnonymousUser | int | None = None,
        successful: bool = False,
        reason: str = "",
    ) -> ConnectionRateLimit:
        from .ratelimit import record_connect_attempt

        return record_connect_attempt(ip_address, user, successful, reason)

    @classmethod
    def cleanup_old_records(cls, days: int | float = 7) -> tuple[int, dict[str, int]]:
        """Delete attempts older than ``days`` (and ended counters); returns the attempts'
        ``QuerySet.delete()`` ``(count, per model)``, as 4.x did (``n, _ = ...``)."""
        from .ratelimit import delete_old_attempts

        return delete_old_attempts(days)
