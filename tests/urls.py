from django.contrib import admin
from django.urls import path

from django_aws_api_gateway_websockets.views import WebSocketTokenView

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/ws-token/", WebSocketTokenView.as_view(), name="websocket_token"),
    path("ws/<slug:route>", views.ChatView.as_view(), name="ws_chat"),
    path("open/<slug:route>", views.OpenView.as_view(), name="ws_open"),
    path("staff/<slug:route>", views.StaffView.as_view(), name="ws_staff"),
    path("explicit/<slug:route>", views.ExplicitView.as_view(), name="ws_explicit"),
    path("history/<slug:route>", views.HistoryView.as_view(), name="ws_history"),
    path("large/<slug:route>", views.LargeView.as_view(), name="ws_large"),
]
