from django.urls import path

from django_aws_api_gateway_websockets.views import WebSocketTokenView, WebSocketView


class BenchView(WebSocketView):
    def default(self, request, *args, **kwargs):
        return {"ok": True}


urlpatterns = [
    path("api/ws-token/", WebSocketTokenView.as_view(), name="websocket_token"),
    path("ws/<slug:route>", BenchView.as_view()),
]
