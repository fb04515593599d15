import os

from django.conf import settings
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

if settings.TARGET == "41":
    from django_aws_api_gateway_websockets.views import WebSocketView

    class BenchView(WebSocketView):
        def bench(self, request, *args, **kwargs):  # 4.1.0: a subclass's methods are handlers
            return JsonResponse({"ok": True})

else:
    from django_aws_api_gateway_websockets.views import WebSocketView, handler

    class BenchView(WebSocketView):
        @handler
        def bench(self, request, *args, **kwargs):
            return {"ok": True}


urlpatterns = [path("ws/<slug:route>", BenchView.as_view())]

if os.environ.get("BENCH_EMPTY_VIEW"):  # the ceiling: the same server, middleware and requests, no work

    @csrf_exempt
    def empty(request, route):
        return JsonResponse({})

    urlpatterns = [path("ws/<slug:route>", empty)]
