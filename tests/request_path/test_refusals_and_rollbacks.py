"""The request path under hostile input and faults (docs/security.md): each case a clear 4xx or a clean
rollback, never a 500 for bad input, never a row changed by a rejected request."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, OperationalError, connection
from django.db.models.signals import post_save
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_aws_api_gateway_websockets import signals, tokens
from django_aws_api_gateway_websockets.gateway_lookup import get_gateway
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession, WebSocketToken
from django_aws_api_gateway_websockets.testing.client import new_connection_id
from django_aws_api_gateway_websockets.views import WebSocketView
from tests.helpers import connect
from tests.views import ChatView, ExplicitView

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def admins(settings):
    settings.ADMINS = [("Admin", "admin@example.com")]


@pytest.fixture(params=[False, True], ids=["autocommit", "ATOMIC_REQUESTS"])
def atomic_requests(request, monkeypatch):
    """Both ways a project may run its views; Django reads the flag per request."""
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", request.param)
    return request.param


def row_state(session):
    return (
        WebSocketSession.objects.filter(pk=session.pk)
        .values("request_count", "updated_on", "channel_name", "connected")
        .get()
    )


def send(post_as_gateway, session, body, path="/ws/", **kwargs):
    return post_as_gateway(path, session.connection_id, body=body, **kwargs)


# --- 1. nested JSON ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[" * 5000 + "]" * 5000,
        "[" * 200 + "]" * 200,  # parsed by every Python: the depth limit refuses it, not the parser
        '{"a":' * 3000 + "1" + "}" * 3000,
        '{"handler": "whoami", "x": ' + "[" * 20000 + "]" * 20000 + "}",
    ],
    ids=["arrays", "shallower-arrays", "objects", "inside-a-valid-message"],
)
def test_deeply_nested_json_is_400_without_mail(post_as_gateway, session_row, body, atomic_requests):
    before = row_state(session_row)
    response = send(post_as_gateway, session_row, body)
    assert response.status_code == 400
    assert response.json() == {"error": "Message body is nested too deeply."}
    assert mail.outbox == []
    assert row_state(session_row) == before


def test_number_overflowing_to_infinity_is_refused_like_infinity(post_as_gateway, gateway):
    """Found in an adversarial review of the request path: it failed on the code it was written against."""
    # views._parse_body rejects the literals NaN/Infinity but json.loads turns 1e999 into
    # float('inf'); the echo handler then answers "Infinity", which is not JSON.
    session = WebSocketSession.objects.create(connection_id=new_connection_id(), api_gateway=gateway)
    response = post_as_gateway("/open/", session.connection_id, body='{"handler": "echo", "x": 1e999}')
    assert response.status_code == 400
    assert WebSocketSession.objects.get(pk=session.pk).request_count == 1


def test_nesting_just_under_the_parser_limit_echoed_back_is_not_a_500_nor_a_mail(post_as_gateway, gateway, settings):
    """Found in an adversarial review of the request path: it failed on the code it was written against."""
    # _parse_body relied on RecursionError for its nesting limit: a body a few levels under the
    # point where json.loads gives up parsed, and a handler sending it back (JsonResponse ->
    # json.dumps, a few frames lower) hit RecursionError: 500 + admin mail. Now an explicit
    # depth limit (WebSocketView.MAX_JSON_DEPTH) answers 400 long before.
    settings.WEBSOCKETS = {"exception_mail_interval_seconds": 0}
    session = WebSocketSession.objects.create(connection_id=new_connection_id(), api_gateway=gateway)

    def echo(depth):  # the body object is level 1, "x" adds ``depth`` levels
        body = '{"handler": "echo", "x": ' + "[" * depth + "]" * depth + "}"
        return post_as_gateway("/open/", session.connection_id, body=body)

    limit = WebSocketView.MAX_JSON_DEPTH
    for depth in (1000, 925, 900, limit):
        response = echo(depth)
        assert response.status_code == 400 and "nested too deeply" in response.content.decode(), depth
    assert echo(limit - 1).status_code == 200
    assert mail.outbox == []


# --- 2. a rejected message changes no row ---------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"handler": "no_such_handler"},
        {"handler": "change_channel", "channel": "has space"},
        {"handler": "change_channel", "channel": ["list"]},
    ],
    ids=["unknown-handler", "bad-channel", "channel-of-wrong-type"],
)
def test_rejected_message_changes_no_row(post_as_gateway, session_row, body, atomic_requests):
    before = row_state(session_row)
    response = send(post_as_gateway, session_row, body, path="/explicit/")  # its default refuses
    assert response.status_code == 400
    assert row_state(session_row) == before


def test_accepted_message_is_counted(post_as_gateway, session_row):
    assert send(post_as_gateway, session_row, {"handler": "whoami"}).status_code == 200
    assert row_state(session_row)["request_count"] == 2


def test_handler_answering_4xx_rolls_back_its_writes(post_as_gateway, session_row, monkeypatch, atomic_requests):
    from django.http import JsonResponse

    def refuse(self, request, *args, **kwargs):
        WebSocketSession.objects.filter(pk=self.websocket_session.pk).update(channel_name="written")
        return JsonResponse({"error": "no"}, status=422)

    monkeypatch.setattr(ChatView, "whoami", refuse)
    before = row_state(session_row)
    assert send(post_as_gateway, session_row, {"handler": "whoami"}).status_code == 422
    assert row_state(session_row) == before


def test_failing_handler_rolls_back_its_writes(post_as_gateway, session_row, monkeypatch, atomic_requests):
    def fail(self, request, *args, **kwargs):
        WebSocketSession.objects.filter(pk=self.websocket_session.pk).update(channel_name="written")
        raise RuntimeError("after a write")

    monkeypatch.setattr(ChatView, "whoami", fail)
    before = row_state(session_row)
    assert send(post_as_gateway, session_row, {"handler": "whoami"}).status_code == 500
    assert row_state(session_row) == before


# --- 3. a message on a disconnected connection -------------------------------------------


def test_message_on_disconnected_connection_is_refused_and_runs_no_handler(post_as_gateway, session_row):
    WebSocketSession.objects.filter(pk=session_row.pk).update(connected=False)
    received = []
    signals.message_received.connect(received.append, dispatch_uid="test-received", weak=False)
    try:
        before = row_state(session_row)
        response = send(post_as_gateway, session_row, {"handler": "explode"})
    finally:
        signals.message_received.disconnect(dispatch_uid="test-received")
    assert response.status_code == 410
    assert received == [] and mail.outbox == []
    assert row_state(session_row) == before


def test_disconnect_of_a_disconnected_connection_stays_200(post_as_gateway, session_row):
    WebSocketSession.objects.filter(pk=session_row.pk).update(connected=False)
    assert post_as_gateway("/ws/", session_row.connection_id, route="disconnect").status_code == 200


# --- 5. $connect is one transaction -----------------------------------------------------------


def assert_nothing_kept(cid):
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()
    assert WebSocketToken.objects.filter(used=True).count() == 0


def test_failing_connected_receiver_keeps_no_row_and_no_spent_token(post_as_gateway, token, atomic_requests):
    def broken(**kwargs):
        raise RuntimeError("receiver bug")

    signals.connected.connect(broken, dispatch_uid="test-broken", weak=False)
    try:
        cid, response = connect(post_as_gateway, f"ws_token={token}")
    finally:
        signals.connected.disconnect(dispatch_uid="test-broken")
    assert response.status_code == 500
    assert_nothing_kept(cid)
    # The token is still good: the browser's retry succeeds.
    assert connect(post_as_gateway, f"ws_token={token}")[1].status_code == 200


def test_database_lost_after_the_insert_keeps_no_row(post_as_gateway, token, atomic_requests):
    def connection_lost(instance, created, **kwargs):
        if created:
            raise OperationalError("server closed the connection unexpectedly")

    post_save.connect(connection_lost, sender=WebSocketSession, dispatch_uid="test-lost", weak=False)
    try:
        cid, response = connect(post_as_gateway, f"ws_token={token}")
    finally:
        post_save.disconnect(sender=WebSocketSession, dispatch_uid="test-lost")
    assert response.status_code == 500
    assert_nothing_kept(cid)


def test_duplicate_connection_id_is_409_under_any_transaction_mode(
    post_as_gateway, session_row, token, atomic_requests
):
    cid, response = connect(post_as_gateway, f"ws_token={token}", connection_id=session_row.connection_id)
    assert response.status_code == 409
    assert mail.outbox == []
    assert WebSocketToken.objects.get().used is False


def test_connect_hook_refusal_keeps_nothing(post_as_gateway, atomic_requests):
    cid, response = connect(post_as_gateway, "channel=refused", path="/explicit/")
    assert response.status_code == 403
    assert response.json() == {"error": "Refused by the connect hook."}
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()
    assert connect(post_as_gateway, "channel=fine", path="/explicit/")[1].status_code == 200


def test_connect_receiver_that_swallows_its_db_error_does_not_answer_200_without_a_row(
    client, user, post_as_gateway, atomic_requests
):
    """Found in an adversarial review of the request path: it failed on the code it was written against."""
    # A connected receiver catches its own IntegrityError (no savepoint of its own): Django marks
    # the connect's atomic block for rollback, the view still answers 200, API Gateway opens the
    # socket, and the row (and the token spend) silently roll back at the block's end.
    client.force_login(user)
    raw = tokens.issue_token(user, client.session.session_key)

    def audit(session, **kwargs):
        try:  # e.g. "insert or ignore" done the wrong way
            WebSocketSession.objects.create(connection_id=session.connection_id, api_gateway=session.api_gateway)
        except IntegrityError:
            pass

    signals.connected.connect(audit, dispatch_uid="review-swallow", weak=False)
    try:
        cid, response = connect(post_as_gateway, f"ws_token={raw}")
    finally:
        signals.connected.disconnect(dispatch_uid="review-swallow")
    row_kept = WebSocketSession.objects.filter(connection_id=cid).exists()
    # Either the socket is refused (non-2xx) or it has its row: never an accepted socket with no row.
    assert response.status_code >= 300 or row_kept, "200 answered but the connection row was rolled back"
    if response.status_code >= 300:
        assert WebSocketToken.objects.get().used is False


# --- 7. secret rotation ---------------------------------------------------------------------


def rotate(gateway, new, at):
    """Rotate as another process would: a queryset update, which no signal reports here."""
    ApiGateway.objects.filter(pk=gateway.pk).update(
        integration_secret=new, previous_integration_secret=gateway.integration_secret, secret_rotated_at=at
    )


def connect_with_secret(post_as_gateway, secret):
    return connect_with_headers(post_as_gateway, {"X-Gateway-Secret": secret})


def connect_with_headers(post_as_gateway, headers):
    return post_as_gateway("/open/", new_connection_id(), route="connect", headers=headers).status_code


def test_rotation_seen_at_once_by_a_process_with_a_cached_record(post_as_gateway, gateway):
    old = gateway.integration_secret
    get_gateway(gateway.api_id)  # this process has cached the record
    rotate(gateway, "N" * 43, timezone.now())
    assert connect_with_secret(post_as_gateway, "N" * 43) == 200  # re-read on mismatch
    assert connect_with_secret(post_as_gateway, old) == 200  # grace period
    assert connect_with_secret(post_as_gateway, "forged") == 403


def test_previous_secret_refused_after_the_grace_period_even_from_the_cache(post_as_gateway, gateway, settings):
    settings.WEBSOCKETS = {"secret_grace_seconds": 60}
    old = gateway.integration_secret
    rotate(gateway, "N" * 43, timezone.now() - timedelta(seconds=61))
    get_gateway(gateway.api_id)
    assert connect_with_secret(post_as_gateway, old) == 403
    assert connect_with_secret(post_as_gateway, "N" * 43) == 200
    session = WebSocketSession.objects.latest("pk")
    message = post_as_gateway(
        "/open/", session.connection_id, body={"handler": "echo"}, headers={"X-Gateway-Secret": old}
    )
    assert message.status_code == 403


def test_matching_secret_costs_no_extra_query(post_as_gateway, gateway):
    get_gateway(gateway.api_id)
    with CaptureQueriesContext(connection) as warm:
        assert connect_with_secret(post_as_gateway, gateway.integration_secret) == 200
    assert not any("apigateway" in q["sql"].lower() for q in warm.captured_queries)


def test_zero_grace_rotation_kills_the_old_secret_in_a_process_with_a_cached_record(post_as_gateway, gateway, settings):
    """Found in an adversarial review of the request path: it failed on the code it was written against."""
    # docs/security.md: "if the old secret must die at once, set secret_grace_seconds low";
    # step 3: "the previous secret stops being accepted, in every process, whatever it has
    # cached". A process that cached the record before the rotation still has the old secret as
    # the *current* one (gateway_lookup.py cache, views._connect_gateway re-reads only on mismatch).
    settings.WEBSOCKETS = {"secret_grace_seconds": 0}
    old = gateway.integration_secret
    get_gateway(gateway.api_id)  # cached before the rotation (another process rotates)
    ApiGateway.objects.filter(pk=gateway.pk).update(
        integration_secret="N" * 43, previous_integration_secret=old, secret_rotated_at=timezone.now()
    )
    status = post_as_gateway(
        "/open/", new_connection_id(), route="connect", headers={"X-Gateway-Secret": old}
    ).status_code
    assert status == 403


def test_previous_secret_is_not_accepted_for_a_rotation_dated_in_the_future(post_as_gateway, gateway, settings):
    """Found in an adversarial review of the request path: it failed on the code it was written against."""
    # security.accepted_secrets(): now < rotated_at + grace, with no lower bound: a rotated_at in
    # the future (clock skew of the rotating host, a bad import) keeps the previous secret alive
    # far beyond secret_grace_seconds.
    settings.WEBSOCKETS = {"secret_grace_seconds": 60}
    old = gateway.integration_secret
    ApiGateway.objects.filter(pk=gateway.pk).update(
        integration_secret="N" * 43,
        previous_integration_secret=old,
        secret_rotated_at=timezone.now() + timedelta(days=30),
    )
    status = post_as_gateway(
        "/open/", new_connection_id(), route="connect", headers={"X-Gateway-Secret": old}
    ).status_code
    assert status == 403


# --- 8. Content-Length ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "-1", "1e3", " ", "0x10"])
def test_invalid_content_length_is_400(client, gateway, session_row, value):
    from django_aws_api_gateway_websockets.testing import integration_headers

    headers = integration_headers(gateway, session_row.connection_id)
    response = client.post(
        "/ws/default", b'{"handler": "whoami"}', content_type="application/json", headers=headers, CONTENT_LENGTH=value
    )
    assert response.status_code == 400
    assert mail.outbox == []


# --- 9. exception mails are throttled ------------------------------------------------------------


def test_one_mail_per_view_and_exception_type_per_interval(post_as_gateway, session_row, caplog, settings, monkeypatch):
    for _ in range(3):
        assert send(post_as_gateway, session_row, {"handler": "explode"}).status_code == 500
    assert len(mail.outbox) == 1
    assert caplog.text.count("Exception in WebSocket handler") == 3  # every occurrence logged

    def explode_differently(self, request, *args, **kwargs):
        raise KeyError("another type")

    monkeypatch.setattr(ChatView, "explode", explode_differently)
    send(post_as_gateway, session_row, {"handler": "explode"})
    assert len(mail.outbox) == 2


def test_mail_throttle_off(post_as_gateway, session_row, settings):
    settings.WEBSOCKETS = {"exception_mail_interval_seconds": 0}
    for _ in range(2):
        send(post_as_gateway, session_row, {"handler": "explode"})
    assert len(mail.outbox) == 2


def test_mail_throttle_key_does_not_collide_for_different_views():
    """Found in an adversarial review of the request path: it failed on the code it was written against."""
    # views._first_mail_in_interval joins module and qualname with "." : module "app.views" +
    # class "ChatView" and module "app" + class "views.ChatView" share one throttle key, so one
    # view's bug silences the other's mail.
    first = type("ChatView", (WebSocketView,), {"__module__": "app.views"})
    second = type("ChatView", (WebSocketView,), {"__module__": "app", "__qualname__": "views.ChatView"})
    assert first()._first_mail_in_interval(RuntimeError()) is True
    assert second()._first_mail_in_interval(RuntimeError()) is True


def test_connect_hook_redirect_also_keeps_nothing(post_as_gateway, monkeypatch):
    from django.http import HttpResponseRedirect

    monkeypatch.setattr(ExplicitView, "connect", lambda self, request, *a, **k: HttpResponseRedirect("/elsewhere"))
    cid, response = connect(post_as_gateway, "channel=fine", path="/explicit/")
    assert response.status_code == 302
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()


def test_connect_hook_refusal_is_announced(post_as_gateway):
    from django_aws_api_gateway_websockets.models import ConnectionRateLimit

    reasons = []
    signals.connection_rejected.connect(lambda reason, **kw: reasons.append(reason), dispatch_uid="t-rej", weak=False)
    try:
        connect(post_as_gateway, "channel=refused", path="/explicit/")
    finally:
        signals.connection_rejected.disconnect(dispatch_uid="t-rej")
    assert reasons == [signals.REASON_CHECK]
    assert ConnectionRateLimit.objects.get().reason == signals.REASON_CHECK
