import pytest
from django.test import RequestFactory
from django.views.generic import TemplateView

from django_aws_api_gateway_websockets.mixins import AddWebSocketRouteToContextMixin, AppChannelWebSocketMixin
from django_aws_api_gateway_websockets.models import ApiGatewayAdditionalRoute
from django_aws_api_gateway_websockets.protocol import is_valid_channel_name

pytestmark = pytest.mark.django_db


class RoutePage(AddWebSocketRouteToContextMixin, TemplateView):
    template_name = "unused.html"
    websocket_route_key = "chat"
    channel_name = "room-1"


class AppPage(AppChannelWebSocketMixin, TemplateView):
    template_name = "unused.html"


def context_of(view_class, path="/ws/default"):
    request = RequestFactory().get(path)
    view = view_class()
    view.setup(request)
    return view.get_context_data()


def test_route_mixin_adds_route_and_channel(gateway):
    route = ApiGatewayAdditionalRoute.objects.create(
        api_gateway=gateway, name="Chat", route_key="chat", integration_url="https://www.example.com/ws/chat"
    )
    context = context_of(RoutePage)
    assert context["api_gateway_route"] == route
    assert context["api_gateway_route"].api_gateway == gateway
    assert context["channel_name"] == "room-1"


def test_route_mixin_without_route():
    assert context_of(RoutePage)["api_gateway_route"] is None


def test_app_channel_mixin_produces_a_valid_channel_name():
    # /ws/default resolves to tests.views.ChatView: package "tests".
    context = context_of(AppPage)
    assert context["channel_name"] == "tests"
    assert is_valid_channel_name(context["channel_name"])


def test_app_channel_override():
    class Override(AppPage):
        app_channel_override = "news"

    assert context_of(Override)["channel_name"] == "news"
