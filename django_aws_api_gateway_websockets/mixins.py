"""Template-context mixins for pages that open a WebSocket."""

import re
import sys
from typing import TYPE_CHECKING

from django.urls import resolve

from . import protocol
from .models import ApiGatewayAdditionalRoute

if TYPE_CHECKING:  # mixed into Django's class-based views, which are ContextMixins
    from django.http import HttpRequest
    from django.views.generic.base import ContextMixin as _ViewBase
else:
    _ViewBase = object


class AddWebSocketRouteToContextMixin(_ViewBase):
    """Adds ``api_gateway_route`` (the additional route for ``websocket_route_key``, with its
    gateway) and ``channel_name`` to the template context."""

    websocket_route_key = "default"
    channel_name = ""

    def get_websocket_route_key(self):
        return self.websocket_route_key

    def get_channel_name(self):
        return self.channel_name

    def get_context_data(self, **kwargs):
        # Set on the view too, as 4.x did: templates read {{ view.channel_name }} and
        # {{ view.websocket_route_key }}.
        self.websocket_route_key = self.get_websocket_route_key()
        self.channel_name = self.get_channel_name()
        context = super().get_context_data(**kwargs)
        context["api_gateway_route"] = (
            ApiGatewayAdditionalRoute.objects.filter(route_key=self.websocket_route_key)
            .select_related("api_gateway")
            .order_by("pk")
            .first()
        )
        context["channel_name"] = self.channel_name
        return context


class AppChannelWebSocketMixin(AddWebSocketRouteToContextMixin):
    """Uses the Django app of the resolved view as route key and channel name.

    Dotted package names (``proj.blog``) become valid channel names (``proj.blog`` passes;
    anything else is replaced by ``-``), cut to the channel length limit.
    """

    app_channel_override: str | None = None
    request: "HttpRequest"  # set by the view

    def _app_name(self):
        module = resolve(self.request.path_info).func.__module__
        package = sys.modules[module].__package__ or module.rpartition(".")[0] or module
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", package)[: protocol.CHANNEL_NAME_MAX_LENGTH]
        return name

    def get_websocket_route_key(self):
        return self._app_name()

    def get_channel_name(self):
        return self.app_channel_override or self._app_name()
