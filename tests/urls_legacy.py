"""A project still written for 4.x: its view relies on implicit handler exposure (W005)."""

from django.urls import path

from django_aws_api_gateway_websockets.views import WebSocketTokenView

from . import views

urlpatterns = [
    path("api/ws-token/", WebSocketTokenView.as_view(), name="websocket_token"),
    path("ws/<slug:route>", views.LegacyChatView.as_view(), name="ws_legacy"),
]
