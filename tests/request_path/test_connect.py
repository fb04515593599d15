"""$connect: the checks of WebSocketView in their documented order (docs/architecture.md, docs/security.md)."""

import pytest
from django.http import HttpRequest
from django.test import override_settings

from django_aws_api_gateway_websockets import signals, tokens
from django_aws_api_gateway_websockets.models import ApiGateway, ConnectionRateLimit, WebSocketSession, WebSocketToken
from django_aws_api_gateway_websockets.testing import integration_headers
from django_aws_api_gateway_websockets.testing.client import new_connection_id
from tests.views import ChatView

from ..helpers import connect

pytestmark = pytest.mark.django_db


def test_token_connect_creates_session_with_user_and_channel(post_as_gateway, token, user, gateway):
    cid, response = connect(post_as_gateway, f"ws_token={token}&channel=room-1")
    assert response.status_code == 200
    session = WebSocketSession.objects.get(connection_id=cid)
    assert (session.user, session.channel_name, session.api_gateway, session.connected) == (
        user,
        "room-1",
        gateway,
        True,
    )
    assert WebSocketToken.objects.get().used is True
    assert ConnectionRateLimit.objects.get().successful is True


def test_token_is_single_use(post_as_gateway, token):
    assert connect(post_as_gateway, f"ws_token={token}")[1].status_code == 200
    cid, response = connect(post_as_gateway, f"ws_token={token}")
    assert response.status_code == 401
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()


def test_token_works_without_the_session_cookie(client, user, gateway, post_as_gateway):
    # The browser talks to the execute-api domain: no Django cookie reaches $connect.
    raw = tokens.issue_token(user, "some-session-key")
    client.logout()
    cid, response = connect(post_as_gateway, f"ws_token={raw}")
    assert response.status_code == 200
    assert WebSocketSession.objects.get(connection_id=cid).user == user


def test_token_bound_to_the_session_that_asked_for_it(client, user, post_as_gateway):
    raw = tokens.issue_token(user, "another-browser-session")
    client.force_login(user)  # a different Django session
    assert connect(post_as_gateway, f"ws_token={raw}")[1].status_code == 401


def test_token_of_another_user_is_refused(client, user, other_user, post_as_gateway):
    client.force_login(other_user)
    raw = tokens.issue_token(user, client.session.session_key)
    assert connect(post_as_gateway, f"ws_token={raw}")[1].status_code == 401


@pytest.mark.parametrize("query", ["", "ws_token=", "ws_token=nope", "ws_token=" + "a" * 300])
def test_missing_or_bad_token_is_refused_and_writes_no_session(post_as_gateway, query):
    cid, response = connect(post_as_gateway, query)
    assert response.status_code == 401
    assert not WebSocketSession.objects.exists()
    assert ConnectionRateLimit.objects.get().reason == "token"


@override_settings(WEBSOCKETS={"token_expiry_seconds": 5})
def test_token_expiry_setting_really_governs(post_as_gateway, token):
    from datetime import timedelta

    row = WebSocketToken.objects.get()
    WebSocketToken.objects.update(created_at=row.created_at - timedelta(seconds=6))
    assert connect(post_as_gateway, f"ws_token={token}")[1].status_code == 401
    WebSocketToken.objects.update(created_at=row.created_at - timedelta(seconds=3))
    assert connect(post_as_gateway, f"ws_token={token}")[1].status_code == 200


def test_refused_connect_does_not_burn_the_token(post_as_gateway, token):
    assert connect(post_as_gateway, f"ws_token={token}&channel=bad name!")[1].status_code == 400
    assert WebSocketToken.objects.get().used is False
    assert connect(post_as_gateway, f"ws_token={token}&channel=ok")[1].status_code == 200


@pytest.mark.parametrize("channel", ["bad name", "x" * 129, "a\n", "ü", "a/b"])
def test_invalid_channel_names_get_400(post_as_gateway, channel):
    from urllib.parse import urlencode

    # /open/ has no token requirement, so only the channel can fail.
    response = post_as_gateway("/open/", new_connection_id(), route="connect", query=urlencode({"channel": channel}))
    assert response.status_code == 400
    assert not WebSocketSession.objects.exists()


def test_default_channel_from_the_record(post_as_gateway, gateway):
    gateway.default_channel_name = "lobby"
    gateway.save()
    cid = new_connection_id()
    assert post_as_gateway("/open/", cid, route="connect").status_code == 200
    assert WebSocketSession.objects.get(connection_id=cid).channel_name == "lobby"


@pytest.mark.parametrize(
    "change",
    [
        {"drop": ["X-Gateway-Secret"]},
        {"headers": {"X-Gateway-Secret": "wrong"}},
        {"headers": {"X-Amzn-Apigateway-Api-Id": "unknownapi"}},
        {"drop": ["X-Amzn-Apigateway-Api-Id"]},
    ],
)
def test_forged_requests_are_403_and_change_nothing(post_as_gateway, change):
    cid = new_connection_id()
    response = post_as_gateway("/open/", cid, route="connect", **change)
    assert response.status_code == 403
    assert not WebSocketSession.objects.exists()
    assert not ConnectionRateLimit.objects.exists()


def test_missing_connection_id_is_400(post_as_gateway):
    response = post_as_gateway("/open/", "", route="connect")
    assert response.status_code == 400


def test_record_without_secret_is_accepted(post_as_gateway, gateway):
    gateway.integration_secret = ""
    gateway.save()
    assert post_as_gateway("/open/", new_connection_id(), route="connect", drop=["X-Gateway-Secret"]).status_code == 200


def test_secret_generated_on_create(gateway):
    assert len(gateway.integration_secret) >= 32


@pytest.mark.parametrize(
    "origin,status",
    [
        ("https://www.example.com", 200),  # CSRF_TRUSTED_ORIGINS
        ("https://localhost", 200),  # https + ALLOWED_HOSTS
        ("http://localhost", 403),  # http origin not trusted
        ("https://evil-example.com", 403),  # substring of a trusted host
        ("https://www.example.com.evil.io", 403),
        ("null", 403),
    ],
)
def test_origin_is_compared_exactly(post_as_gateway, origin, status):
    response = post_as_gateway("/open/", new_connection_id(), route="connect", headers={"Origin": origin})
    assert response.status_code == status


def test_rate_limit_uses_the_gateway_source_ip_not_forwarded_for(post_as_gateway, settings):
    settings.WEBSOCKETS = {"rate_limit_max_attempts": 3}
    for _ in range(3):
        assert post_as_gateway("/open/", new_connection_id(), route="connect").status_code == 200
    # A forged X-Forwarded-For does not buy a fresh budget.
    response = post_as_gateway("/open/", new_connection_id(), route="connect", headers={"X-Forwarded-For": "9.9.9.9"})
    assert response.status_code == 429
    # Another source IP (as API Gateway reports it) has its own budget.
    response = post_as_gateway("/open/", new_connection_id(), route="connect", headers={"X-Source-Ip": "10.0.0.7"})
    assert response.status_code == 200
    assert WebSocketSession.objects.count() == 4
    assert ConnectionRateLimit.objects.filter(successful=False, reason="rate_limit").count() == 1


def test_unsynced_legacy_record_does_not_trust_a_client_supplied_source_ip(client, gateway, settings):
    """Found in an adversarial review of the request path: it failed on the code it was written against."""
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


def test_rate_limit_per_user_across_ips(client, user, post_as_gateway):
    from tests.views import ChatView

    client.force_login(user)
    ChatView.RATE_LIMIT_MAX_ATTEMPTS = 2
    try:
        for ip in ("10.0.0.1", "10.0.0.2"):
            raw = tokens.issue_token(user, client.session.session_key)
            assert connect(post_as_gateway, f"ws_token={raw}", headers={"X-Source-Ip": ip})[1].status_code == 200
        raw = tokens.issue_token(user, client.session.session_key)
        assert connect(post_as_gateway, f"ws_token={raw}", headers={"X-Source-Ip": "10.0.0.3"})[1].status_code == 429
    finally:
        ChatView.RATE_LIMIT_MAX_ATTEMPTS = None


def test_rate_limit_window(post_as_gateway, settings):
    from datetime import timedelta

    settings.WEBSOCKETS = {"rate_limit_max_attempts": 1, "rate_limit_window_minutes": 2}
    assert post_as_gateway("/open/", new_connection_id(), route="connect").status_code == 200
    assert post_as_gateway("/open/", new_connection_id(), route="connect").status_code == 429
    # Three minutes later: the counters' window (ratelimit.py, database backend) has ended.
    from django.db.models import F

    from django_aws_api_gateway_websockets.models import ConnectionRateCounter

    ConnectionRateCounter.objects.update(expires_ms=F("expires_ms") - int(timedelta(minutes=3).total_seconds() * 1000))
    assert post_as_gateway("/open/", new_connection_id(), route="connect").status_code == 200


def test_duplicate_connection_id_is_409_and_keeps_the_first_row(post_as_gateway, transactional_db):
    cid = new_connection_id()
    assert post_as_gateway("/open/", cid, route="connect", query="channel=a").status_code == 200
    assert post_as_gateway("/open/", cid, route="connect", query="channel=b").status_code == 409
    assert WebSocketSession.objects.get(connection_id=cid).channel_name == "a"


def test_permissions_checked_on_connect(client, user, grant, post_as_gateway):
    client.force_login(user)

    def attempt():
        raw = tokens.issue_token(user, client.session.session_key)
        return post_as_gateway("/staff/", new_connection_id(), route="connect", query=f"ws_token={raw}")

    assert attempt().status_code == 403
    grant(user, "auth.view_group")  # "all" satisfied, "any" not
    assert attempt().status_code == 403
    grant(user, "auth.change_user")  # both satisfied
    assert attempt().status_code == 200


def test_additional_connection_checks_hook(post_as_gateway, monkeypatch):
    from tests.views import OpenView

    monkeypatch.setattr(
        OpenView, "_additional_connection_checks", lambda self, request: (False, "Closed today."), raising=False
    )
    response = post_as_gateway("/open/", new_connection_id(), route="connect")
    assert response.status_code == 403
    assert response.json() == {"error": "Closed today."}
    assert not WebSocketSession.objects.exists()


def test_rejection_sends_signal_with_reason(post_as_gateway):
    seen = []

    def receiver(sender, reason, connection_id, **kwargs):
        seen.append((reason, connection_id))

    signals.connection_rejected.connect(receiver)
    try:
        cid = new_connection_id()
        post_as_gateway("/ws/", cid, route="connect")
    finally:
        signals.connection_rejected.disconnect(receiver)
    assert seen == [("token", cid)]


def test_connected_signal(post_as_gateway):
    seen = []
    receiver = lambda sender, session, **kw: seen.append(session.connection_id)  # noqa: E731
    signals.connected.connect(receiver)
    try:
        cid = new_connection_id()
        post_as_gateway("/open/", cid, route="connect")
    finally:
        signals.connected.disconnect(receiver)
    assert seen == [cid]


def test_get_is_405(client, gateway):
    assert client.get("/ws/connect").status_code == 405


def test_a_request_without_a_method_is_405_not_a_crash():
    """Found by type-checking the whole package (mypy with django-stubs, issue #14)."""
    # HttpRequest.method is None until a handler sets it; dispatch called .lower() on it.
    request = HttpRequest()
    request.META["HTTP_CONNECTIONID"] = "abc="
    response = ChatView.as_view()(request, route="default")
    assert response.status_code == 405
