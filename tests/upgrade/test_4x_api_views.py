"""4.x user code against 5.x: the view and mixin API the 4.x docs taught keeps working (SPEC §2,
docs/upgrading.md "Coming from 4.x"). The views below are written as a 4.x project wrote them:
``connect``/``disconnect`` overrides returning ``super()``, a ``permission_denied`` override,
``required_headers`` extended, ``as_view(debug=True)``, ``has_any_permission`` as a handler guard,
a ``dispatch`` override reading ``self.body``; what 5.x no longer honours is named by checks
W060/W061 or a DeprecationWarning."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.http import HttpResponseBadRequest, HttpResponseForbidden, JsonResponse
from django.template import Context, Template
from django.test import RequestFactory
from django.urls import include, path
from django.views.generic import TemplateView

from django_aws_api_gateway_websockets import checks
from django_aws_api_gateway_websockets.mixins import AddWebSocketRouteToContextMixin, AppChannelWebSocketMixin
from django_aws_api_gateway_websockets.models import (
    ChannelPermission,
    ConnectionRateLimit,
    WebSocketSession,
    WebSocketToken,
)
from django_aws_api_gateway_websockets.testing.client import new_connection_id
from django_aws_api_gateway_websockets.views import WebSocketView

from ..helpers import connect

pytestmark = pytest.mark.django_db

# --- the 4.x project's views ---------------------------------------------------------------

HOOK_LOG = []


class FourXChatView(WebSocketView):
    """The common 4.x overrides: work after the package's connect, before its disconnect answer."""

    required_headers = WebSocketView.required_headers + ["X-Custom-Header"]

    def connect(self, request, *args, **kwargs):
        response = super().connect(request, *args, **kwargs)
        if response.status_code == 200:
            HOOK_LOG.append(("connected", request.user.get_username()))
        if request.GET.get("channel") == "closed":
            return HttpResponseForbidden("This room is closed")
        return response

    def disconnect(self, request, *args, **kwargs):
        response = super().disconnect(request, *args, **kwargs)
        get_user_model().objects.filter(pk=request.user.pk).update(first_name="left")
        if request.headers.get("X-Fail-Hook"):
            return HttpResponseBadRequest("hook failed")
        HOOK_LOG.append(("disconnected", response.status_code))
        return response

    def default(self, request, *args, **kwargs):
        return JsonResponse({"type": "default"})

    def guarded(self, request, *args, **kwargs):  # 4.x: every public method is a handler
        if not self.has_any_permission(request):
            return self.permission_denied(request, *args, **kwargs)
        return JsonResponse({"type": "guarded"})


class StaffOnlyView(WebSocketView):
    permissions_required = ["auth.view_user"]
    ALLOWED_HANDLERS = ["hello"]

    def permission_denied(self, request, *args, **kwargs):
        return HttpResponseForbidden("Staff only, sorry")

    def hello(self, request, *args, **kwargs):
        return JsonResponse({"type": "hello"})


class LenientDenialView(StaffOnlyView):
    def permission_denied(self, request, *args, **kwargs):
        return JsonResponse({"welcome": True})  # a 200: must not accept anything


class SilentDenialView(StaffOnlyView):
    def permission_denied(self, request, *args, **kwargs):
        return None  # 4.x answered 200 {} for a falsy result


class BrokenDenialView(StaffOnlyView):
    def permission_denied(self, request, *args, **kwargs):
        raise RuntimeError("bug in the denial page")


class BodyReadingView(WebSocketView):
    """4.x parsed self.body in setup(): overrides read it before super().dispatch()."""

    ALLOWED_HANDLERS = ["echo"]

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.seen_in_setup = self.body.get("text")

    def dispatch(self, request, *args, **kwargs):
        if self.body.get("handler") == "blocked":
            return HttpResponseBadRequest("blocked by dispatch")
        return super().dispatch(request, *args, **kwargs)

    def echo(self, request, *args, **kwargs):
        return {"body": self.body, "seen_in_setup": self.seen_in_setup}


class OldHooksView(WebSocketView):
    """4.x hooks 5.x never calls; one calls super()."""

    ALLOWED_HANDLERS = []

    def missing_headers(self, request, *args, **kwargs):
        return super().missing_headers(request, *args, **kwargs)

    def invalid_useragent(self, request, *args, **kwargs):
        return HttpResponseBadRequest("bad agent")

    def permission_denied(self, request, *args, **kwargs):
        return HttpResponseForbidden("no")

    def default(self, request, *args, **kwargs):
        return {"type": "default"}


class OldPrivateOverridesView(WebSocketView):
    """4.x customisations through private methods: 5.x never calls them."""

    ALLOWED_HANDLERS = []

    def _allowed_apigateway(self, request, *args, **kwargs):
        return request.headers.get("X-Amzn-Apigateway-Api-Id") == "only-this-one"

    def _get_client_ip(self, request):
        return request.headers.get("X-Real-Ip", "")


urlpatterns = [
    path("fourx/<slug:route>", FourXChatView.as_view()),
    path("fourx-debug/<slug:route>", FourXChatView.as_view(debug=True)),
    path("staffonly/<slug:route>", StaffOnlyView.as_view()),
    path("lenient/<slug:route>", LenientDenialView.as_view()),
    path("silent/<slug:route>", SilentDenialView.as_view()),
    path("brokendenial/<slug:route>", BrokenDenialView.as_view()),
    path("bodyreading/<slug:route>", BodyReadingView.as_view()),
    path("oldhooks/<slug:route>", OldHooksView.as_view()),
    path("oldprivate/<slug:route>", OldPrivateOverridesView.as_view()),
    path("", include("tests.urls")),
]


@pytest.fixture(autouse=True)
def fourx_urls(settings):
    settings.ROOT_URLCONF = __name__
    HOOK_LOG.clear()


def session_for(gateway, user=None):
    return WebSocketSession.objects.create(connection_id=new_connection_id(), user=user, api_gateway=gateway)


def message(post_as_gateway, session, body, path):
    return post_as_gateway(path, session.connection_id, body=body)


# --- 5. connect / disconnect overrides returning super() -------------------------------------


def test_connect_override_returning_super_connects(post_as_gateway, token, user):
    cid, response = connect(post_as_gateway, f"ws_token={token}&channel=room-1", path="/fourx/")
    assert response.status_code == 200
    assert WebSocketSession.objects.get(connection_id=cid).user == user
    assert HOOK_LOG == [("connected", "alice")]


def test_connect_override_returning_a_4xx_refuses_and_keeps_nothing(post_as_gateway, token):
    cid, response = connect(post_as_gateway, f"ws_token={token}&channel=closed", path="/fourx/")
    assert (response.status_code, response.content) == (403, b"This room is closed")
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()
    assert WebSocketToken.objects.get().used is False  # rolled back like any refusal
    assert ConnectionRateLimit.objects.get().successful is False


def test_disconnect_override_returning_super(post_as_gateway, gateway, user):
    session = session_for(gateway, user)
    response = post_as_gateway("/fourx/", session.connection_id, route="disconnect")
    assert response.status_code == 200
    assert HOOK_LOG == [("disconnected", 200)]
    assert WebSocketSession.objects.get(pk=session.pk).connected is False
    assert get_user_model().objects.get(pk=user.pk).first_name == "left"


def test_disconnect_override_returning_a_4xx_rolls_back_its_writes_but_the_socket_is_gone(
    post_as_gateway, gateway, user
):
    session = session_for(gateway, user)
    response = post_as_gateway("/fourx/", session.connection_id, route="disconnect", headers={"X-Fail-Hook": "1"})
    assert (response.status_code, response.content) == (400, b"hook failed")
    assert get_user_model().objects.get(pk=user.pk).first_name == ""
    assert WebSocketSession.objects.get(pk=session.pk).connected is False


# --- 6. the inert 4.x attributes and as_view() arguments -----------------------------------------


def test_4x_attributes_keep_their_4x_values():
    assert WebSocketView.required_headers[-1] == "X-Amzn-Apigateway-Api-Id"
    assert WebSocketView.additional_required_headers == ["X-Amzn-Trace-Id", "X-Forwarded-Port", "X-Real-Ip"]
    assert "Sec-Websocket-Key" in WebSocketView.required_connection_headers
    assert WebSocketView.expected_useragent_prefix == "AmazonAPIGateway_"
    assert (WebSocketView.debug, WebSocketView.debug_log, WebSocketView.model) == (False, None, None)
    assert WebSocketView.MAX_CHANNEL_NAME_LENGTH == 128
    assert WebSocketView.CHANNEL_NAME_PATTERN.match("room-1")
    assert FourXChatView.required_headers[-1] == "X-Custom-Header"


def test_as_view_debug_serves_requests(post_as_gateway, gateway):
    session = session_for(gateway)
    response = message(post_as_gateway, session, {"handler": "nothing"}, "/fourx-debug/")
    assert response.json() == {"type": "default"}


def test_extended_required_headers_have_no_effect(post_as_gateway, gateway):
    session = session_for(gateway)  # no X-Custom-Header sent: still served
    assert message(post_as_gateway, session, {"action": "x"}, "/fourx/").status_code == 200


def test_check_w060_names_the_view_and_the_attribute():
    found = [m for m in checks.check_legacy_view_api(None) if m.id == "aws_websockets.W060"]
    texts = sorted(m.msg for m in found)
    assert any(
        t.startswith("FourXChatView sets required_headers, which has no effect in 5.x") and "X-Gateway-Secret" in t
        for t in texts
    )
    assert any(t.startswith("FourXChatView is given debug=True by as_view()") and "logger" in t for t in texts)
    assert len(found) == 2  # views keeping the 4.x defaults are not reported
    assert all("removed in 6.0" in m.hint for m in found)


# --- 7. permission_denied and the other 4.x hooks ---------------------------------------------


def test_permission_denied_override_answers_a_connect_refusal(post_as_gateway, token):
    cid, response = connect(post_as_gateway, f"ws_token={token}", path="/staffonly/")
    assert (response.status_code, response.content) == (403, b"Staff only, sorry")
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()
    assert WebSocketToken.objects.get().used is False
    assert ConnectionRateLimit.objects.get().reason == "permission"


def test_permission_denied_override_answers_a_channel_refusal(post_as_gateway, token, user, grant):
    grant(user, "auth.view_user")
    ChannelPermission.objects.create(channel_name="staff-room", access=ChannelPermission.Access.STAFF_ONLY)
    cid, response = connect(post_as_gateway, f"ws_token={token}&channel=staff-room", path="/staffonly/")
    assert (response.status_code, response.content) == (403, b"Staff only, sorry")
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()


def test_permission_denied_override_answers_a_message_refusal(post_as_gateway, gateway, user):
    session = session_for(gateway, user)
    response = message(post_as_gateway, session, {"handler": "hello"}, "/staffonly/")
    assert (response.status_code, response.content) == (403, b"Staff only, sorry")
    assert WebSocketSession.objects.get(pk=session.pk).request_count == session.request_count


@pytest.mark.parametrize("path", ["/lenient/", "/silent/"])
def test_permission_denied_cannot_turn_a_refusal_into_an_acceptance(post_as_gateway, client, user, gateway, path):
    from django_aws_api_gateway_websockets import tokens

    client.force_login(user)
    raw = tokens.issue_token(user, client.session.session_key)
    cid, response = connect(post_as_gateway, f"ws_token={raw}", path=path)
    assert response.status_code == 403
    assert response.json() == {"error": "Permission denied."}
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()
    assert WebSocketToken.objects.get().used is False
    session = session_for(gateway, user)
    assert message(post_as_gateway, session, {"handler": "hello"}, path).status_code == 403


def test_a_failing_permission_denied_is_a_500_and_keeps_nothing(post_as_gateway, token):
    cid, response = connect(post_as_gateway, f"ws_token={token}", path="/brokendenial/")
    assert response.status_code == 500
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()


def test_permission_denied_base_is_the_package_403():
    response = WebSocketView().permission_denied(RequestFactory().post("/"))
    assert (response.status_code, json.loads(response.content)) == (403, {"error": "Permission denied."})


def test_4x_hooks_5x_never_calls_are_named_by_check_w061():
    found = sorted(m.msg for m in checks.check_legacy_view_api(None) if m.id == "aws_websockets.W061")
    assert found == [
        "OldHooksView overrides invalid_useragent(), which 5.x never calls: the User-Agent is not checked.",
        "OldHooksView overrides missing_headers(), which 5.x never calls: headers are not checked; "
        "a request without the integration secret is answered 403.",
    ]


def test_4x_private_method_overrides_5x_never_calls_are_named_by_check_w062():
    # A 4.x view refusing gateways in _allowed_apigateway loads and runs: its rule no longer applies.
    found = sorted(m.msg for m in checks.check_legacy_view_api(None) if m.id == "aws_websockets.W062")
    assert found == [
        "OldPrivateOverridesView defines _allowed_apigateway(), a 4.x private method 5.x never calls: the "
        "gateway is the record of the request's API id, authenticated by its integration secret; "
        "aws_api_gateway_id restricts a view to one API.",
        "OldPrivateOverridesView defines _get_client_ip(), a 4.x private method 5.x never calls: the client "
        "address is API Gateway's X-Source-Ip.",
    ]


def test_4x_hook_called_through_super_warns_and_answers_400():
    with pytest.warns(DeprecationWarning, match=r"missing_headers\(\) is never called by 5.x.*removed in 6.0"):
        response = OldHooksView().missing_headers(RequestFactory().post("/"))
    assert (response.status_code, response.content) == (400, b"Invalid request headers")  # as 4.x answered


@pytest.mark.parametrize("name", ["missing_headers", "invalid_useragent", "permission_denied"])
def test_4x_hook_overrides_are_never_handlers(post_as_gateway, gateway, name):
    # 4.x made every public method a handler; an overridden hook is view plumbing here.
    session = session_for(gateway)
    response = message(post_as_gateway, session, {"handler": name}, "/oldhooks/")
    assert response.json() == {"type": "default"}
    assert name not in OldHooksView.get_allowed_handlers()
    assert OldHooksView.implicit_handlers() == frozenset()  # W005 has nothing to report either


# --- 8. has_any_permission without permissions_required ------------------------------------------


def test_has_any_permission_guard_passes_without_permissions_required(post_as_gateway, gateway, user):
    session = session_for(gateway, user)
    assert message(post_as_gateway, session, {"handler": "guarded"}, "/fourx/").json() == {"type": "guarded"}


def test_has_any_permission_still_applies_the_list(user, grant):
    request = RequestFactory().post("/")
    request.user = user
    assert StaffOnlyView().has_any_permission(request) is False
    grant(user, "auth.view_user")
    request.user = get_user_model().objects.get(pk=user.pk)  # a fresh permission cache
    assert StaffOnlyView().has_any_permission(request) is True


# --- 11. self.body after setup() --------------------------------------------------------------------


def test_setup_and_dispatch_overrides_read_the_body(post_as_gateway, gateway):
    session = session_for(gateway)
    response = message(post_as_gateway, session, {"handler": "echo", "text": "hi"}, "/bodyreading/")
    assert response.json() == {"body": {"handler": "echo", "text": "hi"}, "seen_in_setup": "hi"}
    blocked = message(post_as_gateway, session, {"handler": "blocked"}, "/bodyreading/")
    assert (blocked.status_code, blocked.content) == (400, b"blocked by dispatch")


def test_the_body_is_parsed_once(post_as_gateway, gateway, monkeypatch):
    calls = []
    real = WebSocketView._parse_body

    def counting(self, request):
        calls.append(request.path)
        return real(self, request)

    monkeypatch.setattr(WebSocketView, "_parse_body", counting)
    session = session_for(gateway)
    assert message(post_as_gateway, session, {"handler": "echo"}, "/bodyreading/").status_code == 200
    assert message(post_as_gateway, session, {"handler": "whoami"}, "/ws/").status_code == 200
    assert len(calls) == 2


@pytest.mark.parametrize(
    "body,status",
    [
        ("{not json", 400),
        ("[1, 2]", 400),
        (b"\xff\xfe", 400),
        ("[" * 5000 + "]" * 5000, 400),
        (json.dumps({"text": "x" * 200_000}), 413),
    ],
    ids=["malformed", "array", "not-utf8", "deep", "too-large"],
)
def test_malformed_body_read_early_answers_the_4xx_not_a_500(post_as_gateway, gateway, body, status):
    session = session_for(gateway)
    response = post_as_gateway("/bodyreading/", session.connection_id, body=body)
    assert response.status_code == status


# --- 10. the mixins set what 4.x templates read ---------------------------------------------------


class RoutePage(AddWebSocketRouteToContextMixin, TemplateView):
    template_name = "unused.html"
    websocket_route_key = "chat"
    channel_name = "room-1"


class AppPage(AppChannelWebSocketMixin, TemplateView):
    template_name = "unused.html"


class OverriddenAppPage(AppPage):
    app_channel_override = "news"


TEMPLATE = Template("{{ view.channel_name }}|{{ view.websocket_route_key }}|{{ channel_name }}")


def rendered(view_class, path="/ws/default"):
    view = view_class()
    view.setup(RequestFactory().get(path))
    return TEMPLATE.render(Context(view.get_context_data()))


@pytest.mark.parametrize(
    "view_class,expected",
    [(AppPage, "tests|tests|tests"), (OverriddenAppPage, "news|tests|news"), (RoutePage, "room-1|chat|room-1")],
)
def test_mixin_templates_read_view_channel_name_and_route_key(view_class, expected):
    # /ws/default resolves to tests.views.ChatView: app package "tests".
    assert rendered(view_class) == expected
