"""Which methods a message may call (handlers.py, docs/security.md): the ``handler`` key (or
``action``), ``@handler`` and ``ALLOWED_HANDLERS``; never the view's plumbing or its helpers."""

import pytest
from django.core import mail
from django.urls import include, path

from django_aws_api_gateway_websockets.models import WebSocketSession
from django_aws_api_gateway_websockets.testing.client import new_connection_id
from tests.views import ChatView, ExplicitView, LegacyChatView

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def admins(settings):
    # A 500 or an error on django.security would mail them: mail.outbox == [] means neither.
    settings.ADMINS = [("Admin", "admin@example.com")]


def send(post_as_gateway, session, body, path="/ws/", **kwargs):
    return post_as_gateway(path, session.connection_id, body=body, **kwargs)


# --- views and URLs of this module (tests/urls.py is left as it is) ---------------------------


class NarrowChatView(ChatView):
    """A careless user narrows an existing view to one handler, as the docs say it works:
    "ALLOWED_HANDLERS = [...]: exactly those"."""

    ALLOWED_HANDLERS = ["whoami"]


urlpatterns = [
    path("narrow/<slug:route>", NarrowChatView.as_view()),
    path("", include("tests.urls")),
]


@pytest.fixture
def narrow_urls(settings):
    settings.ROOT_URLCONF = __name__


# --- which names a message reaches ------------------------------------------------------------


def test_action_key_selects_a_handler_when_handler_is_absent(post_as_gateway, session_row):
    assert send(post_as_gateway, session_row, {"action": "whoami"}).json()["type"] == "whoami"


def test_handler_key_wins_over_action(post_as_gateway, session_row):
    body = {"action": "chat", "handler": "whoami"}
    assert send(post_as_gateway, session_row, body).json()["type"] == "whoami"


@pytest.mark.parametrize(
    "name",
    [
        "_private",
        "dispatch",
        "setup",
        "connect",
        "disconnect",
        "post",
        "get",
        "options",
        "http_method_not_allowed",
        "has_any_permission",
        "as_view",
        "__init__",
        "handle_exception",
        "nope",
        42,
    ],
)
def test_private_plumbing_and_unknown_names_go_to_default(post_as_gateway, session_row, name):
    response = send(post_as_gateway, session_row, {"handler": name})
    assert response.status_code == 200
    assert response.json()["type"] == "default"
    assert WebSocketSession.objects.get(pk=session_row.pk).connected is True


def test_explicit_allowed_handlers(post_as_gateway, gateway, user):
    session = WebSocketSession.objects.create(connection_id=new_connection_id(), api_gateway=gateway)
    assert send(post_as_gateway, session, {"handler": "echo", "x": 1}, path="/open/").json() == {
        "type": "echo",
        "body": {"handler": "echo", "x": 1},
    }
    # Not listed and no default override: a clear 400, not a 500.
    response = send(post_as_gateway, session, {"handler": "not_listed"}, path="/open/")
    assert response.status_code == 400


def test_custom_route_path_dispatches_by_body(post_as_gateway, session_row):
    # An additional route "chat" integrates to /ws/chat: same view, route kwarg "chat".
    response = post_as_gateway(
        "/ws/", session_row.connection_id, route="chat", body={"action": "chat", "handler": "whoami"}
    )
    assert response.json()["type"] == "whoami"


@pytest.mark.urls("tests.urls_legacy")
def test_helper_methods_are_not_handlers_of_a_4x_style_view(post_as_gateway, session_row):
    # No @handler, no ALLOWED_HANDLERS: format_text(self, text) does not take a request.
    assert "format_text" not in LegacyChatView.get_allowed_handlers()
    assert send(post_as_gateway, session_row, {"handler": "whoami"}).json() == {"type": "whoami", "user": "alice"}
    response = send(post_as_gateway, session_row, {"handler": "format_text"})
    assert response.json() == {"type": "default"}  # the view's default answered
    assert mail.outbox == []


@pytest.mark.urls("tests.urls_legacy")
def test_check_warns_about_implicit_exposure():
    from django.core.checks import run_checks

    warnings = [m for m in run_checks() if m.id == "aws_websockets.W005"]
    assert [m.msg for m in warnings] == ["LegacyChatView exposes its public methods to messages implicitly: whoami."]


def test_no_warning_for_views_with_marked_handlers():
    from django.core.checks import run_checks

    assert [m for m in run_checks() if m.id == "aws_websockets.W005"] == []


def test_marked_handlers_are_the_only_ones(post_as_gateway, session_row):
    from django_aws_api_gateway_websockets.handlers import BUILTIN_HANDLERS

    assert ExplicitView.get_allowed_handlers() == {"shout", "default", *BUILTIN_HANDLERS}
    assert ExplicitView.implicit_handlers() == frozenset()
    ok = send(post_as_gateway, session_row, {"handler": "shout", "text": "hi"}, path="/explicit/")
    assert ok.json() == {"type": "shout", "text": "HI"}
    for name in ("helper", "format_text", "connect", "dispatch", "setup", "_private", "post", "options"):
        response = send(post_as_gateway, session_row, {"handler": name}, path="/explicit/")
        assert response.status_code == 400, name
    assert mail.outbox == []


def test_implicit_handlers_are_listed_for_the_check():
    assert LegacyChatView.implicit_handlers() == {"whoami"}
    assert ChatView.implicit_handlers() == frozenset()


def test_allowed_handlers_on_a_subclass_does_not_keep_inherited_marked_handlers(
    narrow_urls, post_as_gateway, gateway, user
):
    """Found in an adversarial review of the request path: it failed on the code it was written against."""
    # handlers.py allowed_handlers(): names = set(ALLOWED_HANDLERS) | marked. The docs promise
    # "exactly those": send_chat / explode (marked on the parent) must not be reachable.
    assert NarrowChatView.get_allowed_handlers() == frozenset({"whoami"})
    session = WebSocketSession.objects.create(connection_id=new_connection_id(), user=user, api_gateway=gateway)
    response = post_as_gateway("/narrow/", session.connection_id, body={"handler": "explode"})
    assert response.status_code == 200
    assert response.json()["type"] == "default"
    assert mail.outbox == []
