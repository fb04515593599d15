"""Database models. Thin on purpose: AWS calls live in ``provisioning`` and ``sending``,
token and rate-limit rules in ``tokens`` and ``ratelimit``; the methods that delegate to them
(the 4.x model API) are mixed in from ``compat``, so this module imports none of those.
"""

import secrets
from typing import TYPE_CHECKING, Any, Self

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from . import protocol
from .compat import (
    ApiGatewayMethods,
    ConnectionRateLimitMethods,
    WebSocketSessionMethods,
    WebSocketSessionQuerySetMethods,
    WebSocketTokenMethods,
    moved_from_models,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import _User  # the AUTH_USER_MODEL, for django-stubs' plugin

    # The 4.x helpers, now in ``aws``: typed for users' checked code; at run time ``__getattr__``.
    from .aws import get_boto3_client as get_boto3_client
    from .aws import get_region_name as get_region_name
else:

    def __getattr__(name: str) -> Any:
        # Only for names not defined here: ``from .models import get_boto3_client`` (4.x) warns.
        return moved_from_models(name)


MAX_MESSAGE_SIZE = protocol.MAX_PAYLOAD_BYTES  # the 4.x name, which users' code imports

api_name_validator = RegexValidator(r"^[ a-zA-Z0-9_-]+\Z", _("Use letters, digits, spaces, '_' and '-' only."))
hostname_validator = RegexValidator(
    r"^(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\Z",
    _("Enter a valid host name such as ws.example.com."),
)
channel_name_validator = RegexValidator(
    rf"^{protocol.CHANNEL_NAME_RE.pattern}\Z",
    _("Use letters, digits, '_', '-' and '.' only."),
)
stage_name_validator = RegexValidator(r"^[A-Za-z0-9_-]+\Z", _("Use letters, digits, '_' and '-' only."))
route_key_validator = RegexValidator(r"^[A-Za-z0-9_.:-]+\Z", _("Use letters, digits, '_', '-', '.' and ':' only."))


def generate_integration_secret():
    return secrets.token_urlsafe(32)


class ProvisioningStatus(models.TextChoices):
    """How far provisioning got (the 4.1.0 release's values, kept for the upgrade)."""

    PENDING = "pending", _("pending")
    CREATING = "creating", _("creating (a run holds the record)")
    API_CREATED = "api_created", _("API created")
    ROUTES_CREATED = "routes_created", _("routes created")
    DEPLOYED = "deployed", _("deployed")
    DOMAIN_CREATED = "domain_created", _("custom domain created")
    MAPPED = "mapped", _("custom domain mapped")


class IntegrationType(models.TextChoices):
    """How API Gateway calls Django for this API's routes."""

    HTTP = "HTTP", _("HTTP: API Gateway POSTs to target_base_endpoint")
    AWS_PROXY = "AWS_PROXY", _("AWS_PROXY: a Lambda function runs Django")


class ApiGateway(ApiGatewayMethods, models.Model):
    """One AWS API Gateway WebSocket API (or a local gateway standing in for one)."""

    api_name = models.CharField(max_length=255, unique=True, validators=[api_name_validator])
    api_description = models.CharField(max_length=255, blank=True, default="")
    default_channel_name = models.CharField(
        max_length=protocol.CHANNEL_NAME_MAX_LENGTH,
        blank=True,
        default="",
        validators=[channel_name_validator],
    )
    domain_name = models.CharField(max_length=255, blank=True, default="", validators=[hostname_validator])
    target_base_endpoint = models.URLField(  # noqa: DJ001 - NULL, as in the 4.x schema upgrades carry
        null=True,
        blank=True,
        help_text=_("Base URL of the Django WebSocket view, e.g. https://www.example.com/ws/"),
    )
    certificate_arn = models.CharField(max_length=255, blank=True, default="")
    hosted_zone_id = models.CharField(max_length=32, blank=True, default="")
    api_key_selection_expression = models.CharField(max_length=255, default="$request.header.x-api-key")
    route_selection_expression = models.CharField(max_length=255, default="$request.body.action")
    route_key = models.CharField(max_length=255, default="$default")
    stage_name = models.CharField(max_length=63, default="production", validators=[stage_name_validator])
    stage_description = models.CharField(max_length=63, blank=True, default="")
    deployment_id = models.CharField(max_length=32, blank=True, default="", editable=False)
    tags = models.JSONField(blank=True, default=dict)
    api_id = models.CharField(max_length=32, blank=True, default="", db_index=True)
    api_endpoint = models.CharField(max_length=255, blank=True, default="")
    api_gateway_domain_name = models.CharField(max_length=255, blank=True, default="")
    api_mapping_id = models.CharField(max_length=128, blank=True, default="")
    api_created = models.BooleanField(default=False, editable=False)
    custom_domain_created = models.BooleanField(default=False, editable=False)
    created_on = models.DateTimeField(auto_now_add=True)
    updated_on = models.DateTimeField(auto_now=True)

    # New in this package.
    region = models.CharField(
        max_length=32,
        blank=True,
        default="",
        help_text=_("AWS region of this API; blank uses AWS_GATEWAY_REGION_NAME."),
    )
    integration_secret = models.CharField(
        max_length=128,
        blank=True,
        default=generate_integration_secret,
        help_text=_(
            "Sent by API Gateway as the X-Gateway-Secret header on every integration "
            "request; requests without it are rejected. Rotate with sync_api_gateway."
        ),
    )
    previous_integration_secret = models.CharField(
        max_length=128,
        blank=True,
        default="",
        editable=False,
        help_text=_(
            "The secret before the last rotation: still accepted for "
            'WEBSOCKETS["secret_grace_seconds"] after secret_rotated_at.'
        ),
    )
    secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    management_endpoint_url = models.URLField(
        blank=True,
        default="",
        help_text=_(
            "Management API (@connections) endpoint. Blank derives "
            "https://{api_id}.execute-api.{region}.amazonaws.com/{stage}."
        ),
    )
    throttling_burst_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Stage default route burst limit; blank keeps AWS's default.")
    )
    throttling_rate_limit = models.FloatField(
        null=True, blank=True, help_text=_("Stage default route requests per second; blank keeps AWS's default.")
    )
    access_log_destination_arn = models.CharField(
        max_length=255, blank=True, default="", help_text=_("CloudWatch Logs group ARN for the stage's access logs.")
    )
    access_log_format = models.TextField(
        blank=True,
        default="",
        help_text=_("Access log format; blank uses a JSON format with connection id and status."),
    )
    default_route_two_way = models.BooleanField(
        default=False,
        help_text=_("Send the $default handler's HTTP response back to the sender."),
    )
    accepts_legacy_secret_header = models.BooleanField(
        default=False,
        editable=False,
        help_text=_(
            "Set by upgrade_from_old_package: the integrations still send the 4.1.0 header "
            "X-Ws-Gateway-Secret. Cleared when sync_api_gateway puts X-Gateway-Secret on them."
        ),
    )
    integration_type = models.CharField(
        max_length=16,
        choices=IntegrationType.choices,
        default=IntegrationType.HTTP,
        help_text=_("How API Gateway reaches Django: HTTP to a public URL, or the Lambda proxy integration."),
    )
    lambda_function_arn = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text=_("With integration_type AWS_PROXY: the ARN of the Lambda function that runs Django."),
    )
    provisioning_status = models.CharField(
        max_length=16,
        choices=ProvisioningStatus.choices,
        default=ProvisioningStatus.PENDING,
        editable=False,
        help_text=_("The last provisioning step that succeeded; 'creating' while a run holds the record."),
    )
    last_error = models.TextField(
        blank=True,
        default="",
        editable=False,
        help_text=_("Why the last provisioning run stopped; blank after a success."),
    )

    class Meta:
        verbose_name = _("API Gateway")
        verbose_name_plural = _("API Gateways")

    def __str__(self):
        return self.api_name

    def save(self, *args, **kwargs):
        if self.target_base_endpoint and not self.target_base_endpoint.endswith("/"):
            self.target_base_endpoint += "/"
        super().save(*args, **kwargs)

    def clean(self):
        super().clean()
        if self.target_base_endpoint and not self.target_base_endpoint.endswith("/"):
            self.target_base_endpoint += "/"

    @property
    def region_name(self):
        from .aws import get_region_name

        return get_region_name(self.region or None)

    @property
    def management_endpoint(self):
        """Where ``@connections`` calls go: the override, else the AWS-derived URL."""
        if self.management_endpoint_url:
            return self.management_endpoint_url.rstrip("/")
        if not self.api_id:
            raise ValidationError(
                _("ApiGateway %(name)s has no api_id yet: create it in AWS first."),
                params={"name": self.api_name},
            )
        return protocol.management_endpoint(self.api_id, self.region_name, self.stage_name)

    @property
    def websocket_url(self):
        """The URL browsers connect to: the custom domain, else the API's endpoint and stage,
        else (a record served by ``runwsgateway``) the local gateway's."""
        if self.domain_name and self.custom_domain_created:
            return f"wss://{self.domain_name}"
        if self.api_endpoint:
            return f"{self.api_endpoint.rstrip('/')}/{self.stage_name}"
        if self.management_endpoint_url.startswith(("http://", "https://")):
            return "ws" + self.management_endpoint_url.removeprefix("http").rstrip("/")
        return ""


class ApiGatewayAdditionalRoute(models.Model):
    """A custom route key with its own integration URL."""

    api_gateway = models.ForeignKey(ApiGateway, on_delete=models.CASCADE, related_name="additional_routes")
    name = models.CharField(max_length=63)
    route_key = models.CharField(max_length=64, db_index=True, validators=[route_key_validator])
    integration_url = models.URLField()
    two_way = models.BooleanField(default=False, help_text=_("Send the handler's HTTP response back to the sender."))
    deployed = models.BooleanField(default=False, editable=False)
    route_id = models.CharField(max_length=32, blank=True, default="", editable=False, help_text=_("AWS RouteId."))
    integration_id = models.CharField(
        max_length=32, blank=True, default="", editable=False, help_text=_("AWS IntegrationId.")
    )
    created_on = models.DateTimeField(auto_now_add=True)
    updated_on = models.DateTimeField(auto_now=True)

    class Meta:
        unique_together = [("api_gateway", "route_key")]
        verbose_name = _("API Gateway additional route")

    def __str__(self):
        return self.name


class WebSocketSessionQuerySet(WebSocketSessionQuerySetMethods, models.QuerySet["WebSocketSession"]):
    def connected(self) -> Self:
        return self.filter(connected=True)

    def for_user(self, user: "_User | int | None") -> Self:
        return self.filter(user=user)

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> Any:
        """As ``save``: rows created with a ``channel_name`` hold it as a subscription (one
        more INSERT for all of them; rows the database gives no pk back for are left out)."""
        created = super().bulk_create(objs, *args, **kwargs)
        subs = [
            Subscription(connection=row, channel=row.channel_name) for row in created if row.pk and row.channel_name
        ]
        if subs:
            Subscription.objects.using(self.db).bulk_create(subs, ignore_conflicts=True)
        return created

    def in_channel(self, name: str) -> Self:
        """The connections subscribed to ``name`` (one JOIN on the indexed subscription rows;
        unique per connection and channel, so no row comes twice). ``""``, the channel of a
        connect without one (4.x: ``in_channel(session.channel_name)``), is the connections that
        hold no channel."""
        if not name:
            return self.filter(subscriptions__isnull=True)
        return self.filter(subscriptions__channel=name)


class WebSocketSession(WebSocketSessionMethods, models.Model):
    """One WebSocket connection held by API Gateway."""

    connection_id = models.CharField(max_length=255, unique=True)
    channel_name = models.CharField(max_length=protocol.CHANNEL_NAME_MAX_LENGTH, blank=True, default="")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="websocket_sessions",
    )
    connected = models.BooleanField(default=True)
    api_gateway = models.ForeignKey(
        ApiGateway, null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions"
    )
    request_count = models.PositiveBigIntegerField(default=1)
    # The login that opened the connection (keyed hashes, see login.py): logging out of that
    # Django session, or changing the password, closes it.
    session_key_hash = models.CharField(max_length=64, blank=True, default="", db_index=True, editable=False)
    auth_hash = models.CharField(max_length=64, blank=True, default="", editable=False)
    # The message rate limiter's state (views.py, WEBSOCKETS["message_rate_*"]): the bucket as
    # one number, GCRA's "theoretical arrival time" in epoch microseconds. Read with the row and
    # written by the UPDATE that counts the message: no statement of its own.
    message_tat_us = models.BigIntegerField(default=0, editable=False)
    # The login's id kept in its Django session data, keyed hash (login.py): stable across
    # session writes and key changes, so logout finds the connection under every engine. ""
    # for rows opened before it existed: those are matched by session_key_hash.
    login_hash = models.CharField(max_length=64, blank=True, default="", db_index=True, editable=False)
    # Whether the Django session still exists is checked at every message (login.py): its key
    # for engines that store sessions server-side and look them up by key (the database
    # engines already hold it in the clear, in the same database); the expiry for signed
    # cookies, which have nothing to look up.
    django_session_key = models.CharField(max_length=40, blank=True, default="", editable=False)
    session_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_on = models.DateTimeField(auto_now_add=True)
    updated_on = models.DateTimeField(auto_now=True)

    objects = WebSocketSessionQuerySet.as_manager()

    class Meta:
        verbose_name = _("WebSocket session")
        indexes = [
            models.Index(fields=["channel_name", "connected"], name="wss_channel_connected"),
            models.Index(fields=["user", "connected"], name="wss_user_connected"),
            models.Index(fields=["connected", "updated_on"], name="wss_connected_updated"),
        ]

    def __str__(self):
        return self.connection_id

    def save(self, *args: Any, **kwargs: Any) -> None:
        """The 4.x API: a row created with a ``channel_name``, or saved with another one, holds
        that channel as a subscription (the connect path writes both itself, in one statement)."""
        adding = self._state.adding
        before = self._saved_channel_name
        super().save(*args, **kwargs)
        fields = kwargs.get("update_fields")
        if fields is not None and "channel_name" not in fields:
            return
        if not adding and before == self.channel_name:
            return
        rows = Subscription.objects.using(self._state.db)
        if not adding and before:
            rows.filter(connection=self, channel=before).delete()
        if self.channel_name:
            rows.bulk_create([Subscription(connection=self, channel=self.channel_name)], ignore_conflicts=True)
        self._saved_channel_name = self.channel_name

    # The channel the row was read with: save() moves its subscription when it changes.
    _saved_channel_name: str | None = None

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any, *args: Any, **kwargs: Any) -> Any:
        instance = super().from_db(db, field_names, values, *args, **kwargs)
        instance._saved_channel_name = instance.__dict__.get("channel_name")
        return instance


class Subscription(models.Model):
    """One channel a connection is subscribed to (docs/channels.md). The connect query's
    ``channel`` is the first; ``subscribe`` adds more, up to ``WEBSOCKETS["max_subscriptions"]``.
    ``WebSocketSession.channel_name`` keeps the first one for the 4.x API."""

    connection = models.ForeignKey(WebSocketSession, on_delete=models.CASCADE, related_name="subscriptions")
    channel = models.CharField(max_length=protocol.CHANNEL_NAME_MAX_LENGTH)
    created_on = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("subscription")
        constraints = [models.UniqueConstraint(fields=["connection", "channel"], name="wss_subscription_unique")]
        # A broadcast finds a channel's connections by this index (the unique one leads by connection).
        indexes = [models.Index(fields=["channel"], name="wss_subscription_channel")]

    def __str__(self):
        return f"{self.connection_id}: {self.channel}"


class MessagePart(models.Model):
    """One part of a client's message larger than a frame, held until the message is whole
    (pipeline/reassembly.py, docs/large-messages.md): at most
    ``WEBSOCKETS["message_parts_timeout_seconds"]``, at most ``message_parts_max_pending_bytes``
    a connection. ``chunk`` is bytes as received: the message is decoded once, whole."""

    # No database constraint: a part may be stored while a cleanup deletes its connection (the
    # cleanup's commit would fail on it). Such a part is an orphan until it expires, and
    # clear_websocket_sessions deletes expired parts; Django still cascades on delete.
    connection = models.ForeignKey(WebSocketSession, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    message_id = models.CharField(max_length=64)
    index = models.PositiveIntegerField()
    count = models.PositiveIntegerField()
    total = models.BigIntegerField()
    size = models.PositiveIntegerField()  # len(chunk): the connection's held bytes are a SUM of it
    chunk = models.BinaryField()
    created_on = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("message part")
        constraints = [
            models.UniqueConstraint(fields=["connection", "message_id", "index"], name="wsp_message_part_unique")
        ]

    def __str__(self):
        return f"{self.connection_id}: {self.message_id} {self.index + 1}/{self.count}"


class WebSocketToken(WebSocketTokenMethods, models.Model):
    """A single-use connect token. ``token`` holds the SHA-256 of the raw value, never the raw value."""

    token = models.CharField(max_length=64, unique=True, validators=[RegexValidator(r"^[a-f0-9]{64}\Z")])
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="websocket_tokens")
    # A keyed hash of the Django session key the token was issued to (login.hash_session_key).
    session_key = models.CharField(max_length=64, db_index=True)
    # The keyed hash of the login's id (login.hash_login_id), carried to the connection's row.
    login_hash = models.CharField(max_length=64, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    used = models.BooleanField(default=False)

    class Meta:
        verbose_name = _("WebSocket token")
        indexes = [models.Index(fields=["user", "created_at"], name="wst_user_created")]

    def __str__(self):
        return f"token for {self.user} ({self.created_at:%Y-%m-%d %H:%M:%S})"


class ConnectionRateLimit(ConnectionRateLimitMethods, models.Model):
    """One connect attempt: the rate limiter's counter and the admin's audit trail."""

    ip_address = models.GenericIPAddressField(db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="connection_attempts",
    )
    attempt_time = models.DateTimeField(auto_now_add=True, db_index=True)
    successful = models.BooleanField(default=False)
    reason = models.CharField(max_length=32, blank=True, default="", help_text=_("Why a rejected attempt failed."))

    class Meta:
        verbose_name = _("connection attempt")
        indexes = [
            models.Index(fields=["ip_address", "attempt_time"], name="idx_ip_attempt_time"),
            models.Index(fields=["user", "attempt_time"], name="idx_user_attempt_time"),
        ]

    def __str__(self):
        return f"{self.ip_address} at {self.attempt_time:%Y-%m-%d %H:%M:%S}"


class ConnectionRateCounter(models.Model):
    """The connect rate limiter's counter when no shared cache is configured (ratelimit.py).

    One row per key (``ip:<address>:<window seconds>`` or ``user:<pk>:<window seconds>``),
    changed by one atomic upsert per connect; ``expires_ms`` (epoch milliseconds) ends the
    row's window. Not the audit trail: that is ``ConnectionRateLimit``.
    """

    key = models.CharField(max_length=100, primary_key=True)
    count = models.PositiveIntegerField(default=0)
    expires_ms = models.BigIntegerField(db_index=True)

    class Meta:
        verbose_name = _("connection rate counter")

    def __str__(self):
        return f"{self.key}: {self.count}"


class CleanupRun(models.Model):
    """When a cleanup command last ran, and what it removed (for checks and websocket_stats)."""

    command = models.CharField(max_length=64)
    ran_at = models.DateTimeField(auto_now_add=True, db_index=True)
    removed = models.JSONField(default=dict)

    class Meta:
        verbose_name = _("cleanup run")
        get_latest_by = "ran_at"

    def __str__(self):
        return f"{self.command} at {self.ran_at:%Y-%m-%d %H:%M}"


class ChannelPermission(models.Model):
    """Who may join one channel, on $connect and on change_channel (see channel_access.py)."""

    class Access(models.TextChoices):
        ALLOW_ALL = "allow_all", _("everyone, anonymous included")
        STAFF_ONLY = "staff_only", _("staff (and superusers)")
        SUPERUSER_ONLY = "superuser_only", _("superusers")
        PERMISSIONS = "permissions", _("users passing one of the rules (and superusers)")

    channel_name = models.CharField(
        max_length=protocol.CHANNEL_NAME_MAX_LENGTH, unique=True, validators=[channel_name_validator]
    )
    access = models.CharField(max_length=16, choices=Access.choices, default=Access.ALLOW_ALL)
    description = models.CharField(max_length=255, blank=True, default="")
    created_on = models.DateTimeField(auto_now_add=True)
    updated_on = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("channel permission")
        ordering = ["channel_name"]

    def __str__(self):
        return f"{self.channel_name}: {self.get_access_display()}"


class ChannelPermissionRule(models.Model):
    """A set of permissions; a user holding all of them passes (a channel needs any one rule)."""

    channel_permission = models.ForeignKey(ChannelPermission, on_delete=models.CASCADE, related_name="rules")
    permissions = models.ManyToManyField("auth.Permission", blank=True, related_name="channel_permission_rules")

    class Meta:
        verbose_name = _("channel permission rule")
        ordering = ["pk"]

    def __str__(self):
        return f"rule {self.pk} of {self.channel_permission.channel_name}"


from .history_models import ChannelMessage, ChannelSequence  # noqa: E402,F401  (history.py)
