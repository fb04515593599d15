"""Security flaws of the request path, fixed (docs/security.md). Found in the adversarial reviews.

Each test is named after a flaw and asserts the SAFE behaviour: it fails on the code it was
written against and passes once the flaw is fixed.
"""

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, connection
from django.test import Client
from django.urls import include, path
from django.utils import timezone

from django_aws_api_gateway_websockets import channel_access, signals, tokens
from django_aws_api_gateway_websockets.gateway_lookup import get_gateway
from django_aws_api_gateway_websockets.models import (
    ApiGateway,
    ChannelPermission,
    ConnectionRateLimit,
    WebSocketSession,
    WebSocketToken,
)
from django_aws_api_gateway_websockets.testing import integration_headers
from django_aws_api_gateway_websockets.testing.client import new_connection_id
from django_aws_api_gateway_websockets.views import WebSocketView
from tests.views import ChatView

pytestmark = pytest.mark.django_db


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
def review_urls(settings):
    settings.ROOT_URLCONF = __name__


@pytest.fixture(autouse=True)
def admins(settings):
    settings.ADMINS = [("Admin", "admin@example.com")]


@pytest.fixture(params=[False, True], ids=["autocommit", "ATOMIC_REQUESTS"])
def atomic_requests(request, monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", request.param)
    return request.param


def connect(post_as_gateway, query="", path="/ws/", **kwargs):
    cid = new_connection_id()
    return cid, post_as_gateway(path, cid, route="connect", query=query, **kwargs)


# --- 1. handler exposure ------------------------------------------------------------------------


def test_allowed_handlers_on_a_subclass_does_not_keep_inherited_marked_handlers(
    review_urls, post_as_gateway, gateway, user
):
    # handlers.py allowed_handlers(): names = set(ALLOWED_HANDLERS) | marked. The docs promise
    # "exactly those": send_chat / explode (marked on the parent) must not be reachable.
    assert NarrowChatView.get_allowed_handlers() == frozenset({"whoami"})
    session = WebSocketSession.objects.create(connection_id=new_connection_id(), user=user, api_gateway=gateway)
    response = post_as_gateway("/narrow/", session.connection_id, body={"handler": "explode"})
    assert response.status_code == 200
    assert response.json()["type"] == "default"
    assert mail.outbox == []


# --- 2. $connect atomicity --------------------------------------------------------------------


def test_connect_receiver_that_swallows_its_db_error_does_not_answer_200_without_a_row(
    client, user, post_as_gateway, atomic_requests
):
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


# --- 3. secrets -----------------------------------------------------------------------------------


def test_zero_grace_rotation_kills_the_old_secret_in_a_process_with_a_cached_record(post_as_gateway, gateway, settings):
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


def test_unsynced_legacy_record_does_not_trust_a_client_supplied_source_ip(client, gateway, settings):
    # A 4.1.0 record not re-synced yet: its integrations send X-Ws-Gateway-Secret and do not map
    # X-Source-Ip (docs/upgrading.md: "Syncing also adds the X-Source-Ip mapping"). On $connect
    # API Gateway passes the client's handshake headers through, so X-Source-Ip is the
    # client's to choose and every attempt gets a fresh rate-limit budget.
    settings.WEBSOCKETS = {"rate_limit_max_attempts": 2}
    ApiGateway.objects.filter(pk=gateway.pk).update(accepts_legacy_secret_header=True)
    statuses = []
    for i in range(4):
        headers = integration_headers(gateway, new_connection_id(), route="connect")
        headers["X-Ws-Gateway-Secret"] = headers.pop("X-Gateway-Secret")
        headers["X-Source-Ip"] = f"198.51.100.{i + 1}"  # forged by the client, not mapped by AWS
        statuses.append(client.post("/open/connect", headers=headers, REMOTE_ADDR="10.0.0.1").status_code)
    assert statuses[-1] == 429, statuses


# --- 4. sessions end with the login ------------------------------------------------------------------


def test_token_issued_before_logout_is_refused_after_logout(client, user, post_as_gateway):
    # login.py closes the sockets of the Django session that logs out, but the unspent tokens of
    # that session stay valid: a cookieless connect (the execute-api domain) opens a socket as
    # the user after the logout.
    client.force_login(user)
    raw = tokens.issue_token(user, client.session.session_key)
    client.logout()
    cid, response = connect(post_as_gateway, f"ws_token={raw}")
    assert response.status_code == 401
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()


def test_token_issued_before_a_password_change_is_refused_after_it(user, post_as_gateway):
    # The password change closes the user's sockets, but a token issued before it still opens a
    # new one, and that row stores the *new* auth hash: nothing ever closes it.
    browser = Client()
    browser.force_login(user)
    raw = tokens.issue_token(user, browser.session.session_key)
    user.set_password("stolen password replaced")
    user.save()
    cid, response = connect(post_as_gateway, f"ws_token={raw}")
    assert response.status_code == 401
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()


# --- 5. bad input ---------------------------------------------------------------------------------------


def test_number_overflowing_to_infinity_is_refused_like_infinity(post_as_gateway, gateway):
    # views._parse_body rejects the literals NaN/Infinity but json.loads turns 1e999 into
    # float('inf'); the echo handler then answers "Infinity", which is not JSON.
    session = WebSocketSession.objects.create(connection_id=new_connection_id(), api_gateway=gateway)
    response = post_as_gateway("/open/", session.connection_id, body='{"handler": "echo", "x": 1e999}')
    assert response.status_code == 400
    assert WebSocketSession.objects.get(pk=session.pk).request_count == 1


def test_nesting_just_under_the_parser_limit_echoed_back_is_not_a_500_nor_a_mail(post_as_gateway, gateway, settings):
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


# --- 6. exception mail throttle --------------------------------------------------------------------------


def test_mail_throttle_key_does_not_collide_for_different_views():
    # views._first_mail_in_interval joins module and qualname with "." : module "app.views" +
    # class "ChatView" and module "app" + class "views.ChatView" share one throttle key, so one
    # view's bug silences the other's mail.
    first = type("ChatView", (WebSocketView,), {"__module__": "app.views"})
    second = type("ChatView", (WebSocketView,), {"__module__": "app", "__qualname__": "views.ChatView"})
    assert first()._first_mail_in_interval(RuntimeError()) is True
    assert second()._first_mail_in_interval(RuntimeError()) is True


# --- 7. channel rules cache --------------------------------------------------------------------------------


def test_channel_rule_saved_while_the_rules_are_being_read_is_not_lost(monkeypatch):
    # channel_access.channel_rules() reads the rules, then stores them with a fresh expiry,
    # without checking that no save cleared the cache meanwhile: a rule saved by the admin while
    # a request was reading them (in this very process) is ignored for gateway_cache_seconds.
    from types import SimpleNamespace

    real = ChannelPermission
    saved = []

    def read_then_admin_saves(*lookups):
        rows = list(real.objects.prefetch_related(*lookups))
        yield from rows
        # The request has read every rule; before it stores them, the admin saves a new one.
        saved.append(real.objects.create(channel_name="vip", access=real.Access.STAFF_ONLY))

    monkeypatch.setattr(
        channel_access,
        "ChannelPermission",
        SimpleNamespace(objects=SimpleNamespace(prefetch_related=read_then_admin_saves)),
    )
    channel_access.may_join(None, "lobby")  # a request reads the rules; the admin saves meanwhile
    monkeypatch.setattr(channel_access, "ChannelPermission", real)
    assert saved
    assert channel_access.may_join(None, "vip") is False
