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

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, _User  # _User: the AUTH_USER_MODEL (django-stubs)
    from django.db.models import QuerySet

    from .history import ChannelSendResult
    from .models import ConnectionRateLimit, WebSocketSession
    from .sending import SendResult


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
    def generate_token(cls, user: _User, session_key: str | None) -> str:
        """Create a token; returns the raw value (shown once, to the browser)."""
        from .tokens import issue_token

        return issue_token(user, session_key)

    @classmethod
    def validate_and_consume(
        cls, token_value: str, session_key: str | None = None, max_age_seconds: int | None = None
    ) -> _User | None:
        """Consume a raw token; returns its user, or ``None``."""
        from .tokens import consume_token

        token = consume_token(token_value, session_key, max_age_seconds)
        return token.user if token else None

    @classmethod
    def cleanup_expired(cls, max_age_seconds: int = 300) -> int:
        from .tokens import cleanup_tokens

        return cleanup_tokens(max_age_seconds)

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
    def cleanup_old_records(cls, days: int | float = 7) -> int:
        from .ratelimit import cleanup_attempts

        return cleanup_attempts(days)
