import warnings
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.db import models
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .admin_actions import (
    create_api_gateway,  # noqa: F401 - the 4.x action, importable here as in 4.x (not registered: sync creates)
    create_custom_domain,
    delete_api_gateway,
    sync_api_gateway,
)
from .compat import REMOVAL_RELEASE
from .models import (
    ApiGateway,
    ApiGatewayAdditionalRoute,
    ChannelPermission,
    ChannelPermissionRule,
    ConnectionRateLimit,
    ProvisioningStatus,
    Subscription,
    WebSocketSession,
    WebSocketToken,
)

# Typed URLs without a scheme are https (Django 6's default; no warning on 5.2).
URL_FIELDS_HTTPS: "dict[type[models.Field[Any, Any]], dict[str, Any]]" = {models.URLField: {"assume_scheme": "https"}}


class ReadOnlyAdmin(admin.ModelAdmin):
    """Audit tables: rows are written by the package, never by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ApiGatewayAdditionalRouteInline(admin.TabularInline):
    model = ApiGatewayAdditionalRoute
    extra = 0
    fields = ("name", "route_key", "integration_url", "two_way", "deployed", "route_id", "integration_id")
    readonly_fields = ("deployed", "route_id", "integration_id")
    formfield_overrides = URL_FIELDS_HTTPS


@admin.register(ApiGateway)
class ApiGatewayAdmin(admin.ModelAdmin):
    list_display = (
        "api_name",
        "api_id",
        "stage_name",
        "region",
        "domain_name",
        "provisioning_status",
        "api_created",
        "custom_domain_created",
        "updated_on",
    )
    list_filter = ("provisioning_status", "api_created", "custom_domain_created")
    search_fields = ("api_name", "api_id", "domain_name")
    readonly_fields = (
        "provisioning_state",
        "last_error_text",
        "secret_preview",
        "secret_rotated_at",
        "accepts_legacy_secret_header",
        "api_id",
        "api_endpoint",
        "deployment_id",
        "api_gateway_domain_name",
        "api_mapping_id",
        "api_created",
        "custom_domain_created",
        "created_on",
        "updated_on",
    )
    exclude = ("integration_secret", "previous_integration_secret")
    formfield_overrides = URL_FIELDS_HTTPS
    actions = [sync_api_gateway, create_custom_domain, delete_api_gateway]
    inlines = [ApiGatewayAdditionalRouteInline]

    @admin.display(description=_("provisioning status"))
    def provisioning_state(self, obj):
        if obj.provisioning_status == ProvisioningStatus.CREATING:
            return _("creating: claimed by a run since %(time)s") % {"time": obj.updated_on}
        return obj.get_provisioning_status_display()

    @admin.display(description=_("last error"))
    def last_error_text(self, obj):
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", obj.last_error) if obj.last_error else "—"

    @admin.display(description=_("integration secret"))
    def secret_preview(self, obj):
        secret = obj.integration_secret
        return f"…{secret[-4:]} ({len(secret)} characters)" if secret else _("none (unprotected)")


@admin.register(ApiGatewayAdditionalRoute)
class ApiGatewayAdditionalRouteAdmin(admin.ModelAdmin):
    list_display = ("name", "api_gateway", "route_key", "integration_url", "two_way", "deployed")
    list_filter = ("api_gateway", "deployed")
    search_fields = ("name", "route_key", "integration_url")
    readonly_fields = ("deployed", "created_on", "updated_on")
    formfield_overrides = URL_FIELDS_HTTPS


class SubscriptionInline(admin.TabularInline):
    """The channels a connection holds (docs/channels.md): written by the connection's own
    messages, never here."""

    model = Subscription
    extra = 0
    fields = ("channel", "created_on")
    readonly_fields = fields
    ordering = ("created_on", "pk")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WebSocketSession)
class WebSocketSessionAdmin(ReadOnlyAdmin):
    """Connections are API Gateway's: viewable and closable here, never edited (a live
    connection handed to another user would act as that user)."""

    list_display = (
        "connection_id",
        "channel_name",
        "user",
        "api_gateway",
        "connected",
        "request_count",
        "created_on",
        "updated_on",
    )
    list_filter = ("connected", "api_gateway")
    search_fields = ("connection_id", "channel_name", "subscriptions__channel", "user__username")
    inlines = [SubscriptionInline]
    list_select_related = ("user", "api_gateway")
    date_hierarchy = "created_on"
    actions = ["close_connections"]

    def has_close_permission(self, request):
        """Closing a connection changes it: the model's "change" permission (a superuser has it),
        although no one edits a connection here (``has_change_permission`` is False for all)."""
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    @admin.action(description=_("Close selected connections"), permissions=["close"])
    def close_connections(self, request, queryset):
        closed = gone = 0
        for session in queryset.connected().select_related("api_gateway"):
            try:
                if session.close():
                    closed += 1
                else:
                    gone += 1
            except Exception as exc:
                self.message_user(request, f"{session.connection_id}: {type(exc).__name__}: {exc}", messages.ERROR)
        if closed:
            self.message_user(
                request,
                ngettext("Closed %d connection.", "Closed %d connections.", closed) % closed,
                messages.SUCCESS,
            )
        if gone:
            self.message_user(request, _("%d connection(s) were already gone; marked disconnected.") % gone)


class ChannelPermissionRuleInline(admin.TabularInline):
    model = ChannelPermissionRule
    extra = 0
    filter_horizontal = ("permissions",)


@admin.register(ChannelPermission)
class ChannelPermissionAdmin(admin.ModelAdmin):
    """Who may join a channel (channel_access.py); the rules apply with access "permissions"."""

    list_display = ("channel_name", "access", "description", "updated_on")
    list_filter = ("access",)
    search_fields = ("channel_name", "description")
    inlines = [ChannelPermissionRuleInline]


@admin.register(WebSocketToken)
class WebSocketTokenAdmin(ReadOnlyAdmin):
    # ``token`` is a SHA-256 of the raw value: not shown at all, it is useless to a reader.
    list_display = ("user", "created_at", "used")
    list_filter = ("used", "created_at")
    search_fields = ("user__username", "user__email")
    fields = ("user", "created_at", "used")
    date_hierarchy = "created_at"

    @admin.display(description=_("Token (SHA-256)"))
    def token_preview(self, obj):
        """4.x's list column, kept so a 4.x subclass listing it still loads (admin.E108
        otherwise): the start of the stored SHA-256, which reveals nothing of the token."""
        warnings.warn(
            f"WebSocketTokenAdmin.token_preview is deprecated and will be removed in {REMOVAL_RELEASE}: "
            "the row holds the token's SHA-256, not the token; list 'user', 'created_at' and 'used'.",
            DeprecationWarning,
            stacklevel=2,
        )
        return f"{obj.token[:16]}..."


@admin.register(ConnectionRateLimit)
class ConnectionRateLimitAdmin(ReadOnlyAdmin):
    list_display = ("ip_address", "user", "attempt_time", "successful", "reason")
    list_filter = ("successful", "reason", "attempt_time")
    search_fields = ("ip_address", "user__username", "user__email")
    date_hierarchy = "attempt_time"
