from chat import views
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from django_aws_api_gateway_websockets.refusals import WebSocketRefusalView
from django_aws_api_gateway_websockets.views import WebSocketTokenView

urlpatterns = [
    path("", views.RoomView.as_view(), name="room"),
    path("staff/", views.StaffRoomView.as_view(), name="staff_room"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # The browser asks here for a single-use token before every (re)connect.
    path("api/ws-token/", WebSocketTokenView.as_view(), name="websocket_token"),
    # After a failed handshake the browser asks here whether (and why) $connect refused its token.
    path("api/ws-token/refusal/", WebSocketRefusalView.as_view(), name="websocket_refusal"),
    # API Gateway (or runwsgateway) calls these: ws/connect, ws/disconnect, ws/default.
    path("ws/<slug:route>", views.ChatWebSocketView.as_view()),
    path("ws-staff/<slug:route>", views.StaffWebSocketView.as_view()),
]
