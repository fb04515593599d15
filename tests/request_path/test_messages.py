"""Message routes and $disconnect: authentication, handler choice, permissions, errors."""

import time

import pytest
from django.core import mail
from django.http import HttpResponseForbidden
from django.urls import path

from django_aws_api_gateway_websockets import signals
from django_aws_api_gateway_websockets.models import WebSocketSession
from django_aws_api_gateway_websockets.testing.client import new_connection_id
from django_aws_api_gateway_websockets.views import WebSocketView, handler
from tests.views import StaffView

pytestmark = pytest.mark.django_db


def send(post_as_gateway, session, body, path="/ws/", **kwargs):
    return post_as_gateway(path, session.connection_id, body=body, **kwargs)


def test_handler_runs_as_the_user_who_connected(post_as_gateway, session_row):
    response = send(post_as_gateway, session_row, {"handler": "whoami"})
    assert response.status_code == 200
    assert response.json() == {"type": "whoami", "user": "alice"}
    session_row.refresh_from_db()
    assert session_row.request_count == 2
    assert session_row.updated_on > session_row.created_on


def test_change_channel_validates(post_as_gateway, session_row):
    response = send(post_as_gateway, session_row, {"handler": "change_channel", "channel": "room-2"})
    assert response.json() == {"type": "channel_changed", "channel": "room-2"}
    session_row.refresh_from_db()
    assert session_row.channel_name == "room-2"
    for bad in [None, "", "has space", "x" * 200, ["list"]]:
        body = {"handler": "change_channel"} if bad is None else {"handler": "change_channel", "channel": bad}
        assert send(post_as_gateway, session_row, body).status_code == 400
    session_row.refresh_from_db()
    assert session_row.channel_name == "room-2"


def test_ping_builtin(post_as_gateway, session_row):
    assert send(post_as_gateway, session_row, {"handler": "ping"}).json() == {"type": "pong"}


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"text"', b"\xff\xfe"])
def test_malformed_bodies_get_400_and_change_nothing(post_as_gateway, session_row, body):
    response = send(post_as_gateway, session_row, body)
    assert response.status_code == 400
    session_row.refresh_from_db()
    assert session_row.request_count == 1


def test_oversized_body_gets_413(post_as_gateway, session_row):
    response = send(post_as_gateway, session_row, '{"x": "' + "a" * (128 * 1024) + '"}')
    assert response.status_code == 413


def test_unknown_connection_id_is_404(post_as_gateway, gateway):
    response = post_as_gateway("/ws/", new_connection_id(), body={"handler": "whoami"})
    assert response.status_code == 404


@pytest.mark.parametrize(
    "change",
    [
        {"drop": ["X-Gateway-Secret"]},
        {"headers": {"X-Gateway-Secret": "x"}},
        {"headers": {"X-Amzn-Apigateway-Api-Id": "other"}},
    ],
)
def test_forged_message_is_403_and_runs_nothing(post_as_gateway, session_row, change):
    response = send(post_as_gateway, session_row, {"handler": "whoami"}, **change)
    assert response.status_code == 403
    session_row.refresh_from_db()
    assert session_row.request_count == 1


def test_forged_message_for_unknown_connection_is_403(post_as_gateway, gateway):
    response = post_as_gateway("/ws/", new_connection_id(), body={}, headers={"X-Gateway-Secret": "x"})
    assert response.status_code == 403


def test_aws_api_gateway_id_restricts(post_as_gateway, session_row, monkeypatch):
    from tests.views import ChatView

    monkeypatch.setattr(ChatView, "aws_api_gateway_id", "someotherid")
    assert send(post_as_gateway, session_row, {"handler": "whoami"}).status_code == 403
    monkeypatch.setattr(ChatView, "aws_api_gateway_id", session_row.api_gateway.api_id)
    assert send(post_as_gateway, session_row, {"handler": "whoami"}).status_code == 200


def test_handler_exception_is_logged_mailed_and_500(post_as_gateway, session_row, settings, caplog):
    settings.ADMINS = [("Admin", "admin@example.com")]
    response = send(post_as_gateway, session_row, {"handler": "explode"})
    assert response.status_code == 500
    assert len(mail.outbox) == 1
    assert "handler bug" in mail.outbox[0].body
    assert "Exception in WebSocket handler" in caplog.text
    session_row.refresh_from_db()
    assert session_row.request_count == 1  # the failed message was rolled back, counter included


def test_handler_exception_without_mail(post_as_gateway, session_row, settings, monkeypatch):
    from tests.views import ChatView

    settings.ADMINS = [("Admin", "admin@example.com")]
    monkeypatch.setattr(ChatView, "SEND_EXCEPTION_MAIL", False)
    assert send(post_as_gateway, session_row, {"handler": "explode"}).status_code == 500
    assert mail.outbox == []


def test_bad_input_never_mails(post_as_gateway, session_row, settings):
    settings.ADMINS = [("Admin", "admin@example.com")]
    send(post_as_gateway, session_row, "{bad")
    send(post_as_gateway, session_row, {"handler": "change_channel", "channel": "no way"})
    post_as_gateway("/ws/", new_connection_id(), body={})
    assert mail.outbox == []


def test_permissions_any_and_all_both_apply(post_as_gateway, gateway, user, grant):
    session = WebSocketSession.objects.create(connection_id=new_connection_id(), user=user, api_gateway=gateway)
    assert send(post_as_gateway, session, {}, path="/staff/").status_code == 403
    grant(user, "auth.view_user")  # any satisfied, all not
    assert send(post_as_gateway, session, {}, path="/staff/").status_code == 403
    grant(user, "auth.view_group")
    # Permission caches live on the user instance loaded per request: fresh each time.
    assert send(post_as_gateway, session, {}, path="/staff/").json() == {"type": "staff"}


def test_anonymous_session_has_anonymous_user(post_as_gateway, gateway):
    session = WebSocketSession.objects.create(connection_id=new_connection_id(), api_gateway=gateway)
    assert send(post_as_gateway, session, {"handler": "whoami"}).json()["user"] == ""


def test_disconnect_marks_row_and_sends_signal(post_as_gateway, session_row):
    seen = []
    receiver = lambda sender, session, **kw: seen.append(session.connection_id)  # noqa: E731
    signals.disconnected.connect(receiver)
    try:
        response = post_as_gateway("/ws/", session_row.connection_id, route="disconnect")
    finally:
        signals.disconnected.disconnect(receiver)
    assert response.status_code == 200
    session_row.refresh_from_db()
    assert session_row.connected is False
    assert seen == [session_row.connection_id]


def test_forged_disconnect_changes_nothing(post_as_gateway, session_row):
    response = post_as_gateway("/ws/", session_row.connection_id, route="disconnect", drop=["X-Gateway-Secret"])
    assert response.status_code == 403
    session_row.refresh_from_db()
    assert session_row.connected is True


def test_disconnect_unknown_connection_is_404(post_as_gateway, gateway):
    assert post_as_gateway("/ws/", new_connection_id(), route="disconnect").status_code == 404


def test_message_received_signal(post_as_gateway, session_row):
    seen = []
    receiver = lambda sender, handler, route, **kw: seen.append((route, handler))  # noqa: E731
    signals.message_received.connect(receiver)
    try:
        send(post_as_gateway, session_row, {"handler": "whoami"})
    finally:
        signals.message_received.disconnect(receiver)
    assert seen == [("default", "whoami")]


# --- the per-connection message rate (WEBSOCKETS["message_rate_limit"] / ["message_rate_burst"]) ---


def handled_counter():
    """Counts the messages whose handler ran (``message_received`` fires right before it)."""
    runs = []

    def receiver(sender, **kwargs):
        runs.append(kwargs["handler"])

    signals.message_received.connect(receiver, weak=False)
    return runs, receiver


def test_a_burst_past_the_message_rate_is_refused_without_running_the_handler(post_as_gateway, session_row, settings):
    settings.WEBSOCKETS = {"message_rate_limit": 10, "message_rate_burst": 3}
    runs, receiver = handled_counter()
    try:
        answers = [send(post_as_gateway, session_row, {"handler": "whoami"}) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        body = answers[-1].json()
        assert "Too many messages" in body["error"] and 0 < body["retry_after"] <= 0.1
        assert runs == ["whoami"] * 3  # the refused one ran nothing
        session_row.refresh_from_db()
        assert session_row.request_count == 4  # 1 (the connect) + the 3 handled
        time.sleep(body["retry_after"] + 0.01)
        assert send(post_as_gateway, session_row, {"handler": "whoami"}).status_code == 200
        assert len(runs) == 4
    finally:
        signals.message_received.disconnect(receiver)


def test_refused_and_failing_messages_spend_their_place_and_change_nothing_else(post_as_gateway, session_row, settings):
    """Refused after the rate check (400, 403) or failed (500): not counted, their work rolled
    back, but each spends its place in the bucket (before: free, so invalid messages, each
    parsed, logged and announced, were unlimited)."""
    settings.WEBSOCKETS = {"message_rate_limit": 0.001, "message_rate_burst": 3}  # no refill in the test
    before = WebSocketSession.objects.values().get(pk=session_row.pk)
    assert send(post_as_gateway, session_row, "not json").status_code == 400
    assert send(post_as_gateway, session_row, {"handler": "explode"}).status_code == 500
    assert send(post_as_gateway, session_row, {"handler": "change_channel", "channel": "no good"}).status_code == 400
    after = WebSocketSession.objects.values().get(pk=session_row.pk)
    assert after.pop("message_tat_us") > before.pop("message_tat_us") == 0
    assert after == before  # not counted, updated_on and the channel kept
    assert send(post_as_gateway, session_row, {"handler": "whoami"}).status_code == 429


def test_a_flood_of_invalid_messages_meets_the_rate_limit(post_as_gateway, session_row, settings):
    settings.WEBSOCKETS = {"message_rate_limit": 0.001, "message_rate_burst": 2}
    statuses = [send(post_as_gateway, session_row, "{not json").status_code for _ in range(4)]
    assert statuses == [400, 400, 429, 429]  # past the burst: refused before the body is parsed


def test_handled_messages_spend_and_count(post_as_gateway, session_row, settings):
    settings.WEBSOCKETS = {"message_rate_limit": 1, "message_rate_burst": 2}
    assert send(post_as_gateway, session_row, {"handler": "whoami"}).status_code == 200
    assert send(post_as_gateway, session_row, {"handler": "whoami"}).status_code == 200
    assert send(post_as_gateway, session_row, {"handler": "whoami"}).status_code == 429
    session_row.refresh_from_db()
    assert session_row.request_count == 3 and session_row.message_tat_us > 0


def test_message_rate_off_stores_nothing(post_as_gateway, session_row, settings):
    settings.WEBSOCKETS = {"message_rate_limit": 0, "message_rate_burst": 1}
    assert all(send(post_as_gateway, session_row, {"handler": "whoami"}).status_code == 200 for _ in range(5))
    session_row.refresh_from_db()
    assert session_row.message_tat_us == 0  # off: nothing stored either


def test_message_rate_is_per_connection(post_as_gateway, session_row, user, gateway, settings):
    settings.WEBSOCKETS = {"message_rate_limit": 1, "message_rate_burst": 1}
    other = WebSocketSession.objects.create(
        connection_id=new_connection_id(), channel_name="room-1", user=user, api_gateway=gateway
    )
    assert send(post_as_gateway, session_row, {"handler": "whoami"}).status_code == 200
    assert send(post_as_gateway, session_row, {"handler": "whoami"}).status_code == 429
    assert send(post_as_gateway, other, {"handler": "whoami"}).status_code == 200


def test_message_rate_settings_are_validated():
    from django_aws_api_gateway_websockets import conf

    assert conf.value_problem("message_rate_limit", -1)
    assert conf.value_problem("message_rate_burst", 0)
    assert conf.value_problem("message_rate_burst", 2.5)
    assert conf.value_problem("message_rate_limit", 0) is None  # off
    assert conf.value_problem("message_rate_limit", 5) is None  # an int is a number


def test_concurrent_messages_each_spend_their_place(post_as_gateway, session_row, settings):
    """Two messages of one connection handled at the same time read the same bucket state; each
    must still spend its place (the counting UPDATE adds to the row's state), or a client
    keeping k messages in flight gets k times the rate. The second message is sent while the
    first one's handler runs (after its rate check, before its UPDATE): as a concurrent one."""
    settings.WEBSOCKETS = {"message_rate_limit": 0.001, "message_rate_burst": 2}  # no refill in the test
    inner: list = []

    def meanwhile(sender, **kwargs):
        if not inner:
            inner.append(None)  # once: the second message fires this receiver too
            inner[0] = send(post_as_gateway, session_row, {"handler": "whoami"}).status_code

    signals.message_received.connect(meanwhile, weak=False)
    try:
        assert send(post_as_gateway, session_row, {"handler": "whoami"}).status_code == 200
    finally:
        signals.message_received.disconnect(meanwhile)
    assert inner == [200]
    # Both handled: the burst of 2 is spent.
    assert send(post_as_gateway, session_row, {"handler": "whoami"}).status_code == 429


# --- the handler's own transaction, then the count (issue #24, part 3) ---------------------


def test_a_failing_count_keeps_the_handler_s_answer_and_work(post_as_gateway, session_row, monkeypatch, caplog):
    from django.db import DatabaseError

    from django_aws_api_gateway_websockets.db import sessions

    def broken_count(session, tat_us=None):
        raise DatabaseError("injected")

    monkeypatch.setattr(sessions, "count_message", broken_count)
    response = send(post_as_gateway, session_row, {"handler": "change_channel", "channel": "room-2"})
    # The handler's work committed before the count: the count is a statistic, the answer stands.
    assert response.status_code == 200
    session_row.refresh_from_db()
    assert (session_row.channel_name, session_row.request_count) == ("room-2", 1)
    assert "Could not count the message" in caplog.text


class AtomicHandlerView(WebSocketView):
    """A handler whose first use of the database is its own ``transaction.atomic()``."""

    @handler
    def rename(self, request, *args, **kwargs):
        from django.db import transaction

        with transaction.atomic():
            WebSocketSession.objects.filter(pk=self.websocket_session.pk).update(channel_name="renamed")
        transaction.on_commit(lambda: AtomicHandlerView.committed.append(True))
        return {"type": "renamed"}

    committed: list = []


disconnected: list = []


def _staff_only(request, *args, **kwargs):
    return HttpResponseForbidden("Staff only, sorry")


def _on_disconnect(request, *args, **kwargs):
    disconnected.append(kwargs["route"])


urlpatterns = [
    path("atomic/<slug:route>", AtomicHandlerView.as_view()),
    path("hooked/<slug:route>", WebSocketView.as_view(disconnect=_on_disconnect)),
    path("staff-only/<slug:route>", StaffView.as_view(permission_denied=_staff_only)),
]


@pytest.mark.django_db(transaction=True)
def test_a_handler_opening_with_its_own_atomic_block_answers_and_commits(post_as_gateway, session_row, settings):
    """It got a 500 and lost its work: the request's rollback-flag check found no atomic block."""
    from django.db import connection

    settings.ROOT_URLCONF = __name__
    AtomicHandlerView.committed.clear()
    response = send(post_as_gateway, session_row, {"handler": "rename"}, path="/atomic/")
    assert response.status_code == 200, response.content
    session_row.refresh_from_db()
    assert (session_row.channel_name, session_row.request_count) == ("renamed", 2)
    assert AtomicHandlerView.committed == [True]
    assert connection.atomic_blocks == []


def test_a_disconnect_hook_given_to_as_view_runs(post_as_gateway, session_row, settings):
    """``as_view(disconnect=...)`` is the instance's hook: it was skipped (the path looked at the
    class only and took the no-hook shortcut)."""
    settings.ROOT_URLCONF = __name__
    disconnected.clear()
    response = post_as_gateway("/hooked/", session_row.connection_id, route="disconnect")
    assert response.status_code == 200
    assert disconnected == ["disconnect"]


def test_a_permission_denied_hook_given_to_as_view_answers(post_as_gateway, session_row, settings):
    """``as_view(permission_denied=...)``: the instance's hook answers the refusal (the package's
    403 answered instead: only a class override was looked for)."""
    settings.ROOT_URLCONF = __name__
    response = send(post_as_gateway, session_row, {"handler": "default"}, path="/staff-only/")
    assert (response.status_code, response.content) == (403, b"Staff only, sorry")
