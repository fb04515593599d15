"""Parity with the 4.1.0 release, each better than it (docs/security.md): channel access rules, sessions
that end with the login, hashed session keys, the old secret header, admin hygiene."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_aws_api_gateway_websockets import channel_access, login, tokens
from django_aws_api_gateway_websockets.models import (
    ApiGateway,
    ChannelPermission,
    ChannelPermissionRule,
    WebSocketSession,
)
from django_aws_api_gateway_websockets.testing import integration_headers
from django_aws_api_gateway_websockets.testing.client import new_connection_id

from ..helpers import channel, perm
from ..management_server import ManagementServer

pytestmark = pytest.mark.django_db
Access = ChannelPermission.Access


@pytest.fixture
def people(django_user_model):
    make = django_user_model.objects.create_user
    return {
        "anonymous": None,
        "alice": make("alice", password="pw"),
        "staff": make("staff", password="pw", is_staff=True),
        "root": django_user_model.objects.create_superuser("root", password="pw"),
        "inactive_staff": make("gone", password="pw", is_staff=True, is_active=False),
        "viewer": make("viewer", password="pw"),
        "both": make("both", password="pw"),
    }


# --- 1. channel access rules ------------------------------------------------------------


def test_access_levels(people, grant):
    from django.contrib.auth.models import AnonymousUser

    grant(people["viewer"], "auth.view_user")
    grant(people["both"], "auth.view_user", "auth.change_user")
    channel("open", Access.ALLOW_ALL)
    channel("staff", Access.STAFF_ONLY)
    channel("root", Access.SUPERUSER_ONLY)
    channel("editors", Access.PERMISSIONS, ["auth.view_user", "auth.change_user"], ["auth.add_group"])
    channel("nobody", Access.PERMISSIONS, [])
    expected = {
        "open": {"anonymous", "alice", "staff", "root", "inactive_staff", "viewer", "both"},
        "staff": {"staff", "root"},
        "root": {"root"},
        "editors": {"root", "both"},  # viewer holds only one of the rule's two permissions
        "nobody": {"root"},  # a rule without permissions admits nobody but superusers
        "unlisted": {"anonymous", "alice", "staff", "root", "inactive_staff", "viewer", "both"},
    }
    for name, admitted in expected.items():
        for who, user in people.items():
            user = user or AnonymousUser()
            assert channel_access.may_join(user, name) is (who in admitted), (name, who)
    assert channel_access.may_join(people["root"], "unlisted", allow_unlisted=False) is False


def test_rules_are_read_once_and_refreshed_on_change(people, django_assert_num_queries):
    channel("staff", Access.STAFF_ONLY)
    channel_access.may_join(people["alice"], "staff")
    with django_assert_num_queries(0):
        for name in ("staff", "other", "staff"):
            channel_access.may_join(people["alice"], name)
    ChannelPermission.objects.filter(channel_name="staff").get().delete()  # signals clear the copy
    assert channel_access.may_join(people["alice"], "staff") is True


@pytest.fixture
def token_for(client):
    def token_for(user):
        client.force_login(user)
        return tokens.issue_token(user, client.session.session_key)

    return token_for


def connect(post_as_gateway, query, path="/ws/"):
    cid = new_connection_id()
    return cid, post_as_gateway(path, cid, route="connect", query=query)


def test_connect_and_change_channel_apply_the_rules(post_as_gateway, people, token_for, settings):
    channel("staff", Access.STAFF_ONLY)
    cid, refused = connect(post_as_gateway, f"ws_token={token_for(people['alice'])}&channel=staff")
    assert refused.status_code == 403 and refused.json() == {"error": "Channel not allowed."}
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()
    cid, ok = connect(post_as_gateway, f"ws_token={token_for(people['alice'])}&channel=lobby")
    assert ok.status_code == 200
    moved = post_as_gateway("/ws/", cid, body={"handler": "change_channel", "channel": "staff"})
    assert moved.status_code == 403
    assert WebSocketSession.objects.get(connection_id=cid).channel_name == "lobby"
    cid, staff = connect(post_as_gateway, f"ws_token={token_for(people['staff'])}&channel=staff")
    assert staff.status_code == 200


def test_default_deny_for_unlisted_channels(post_as_gateway, people, monkeypatch):
    from tests.views import OpenView

    monkeypatch.setattr(OpenView, "ALLOW_UNLISTED_CHANNELS", False)
    channel("public", Access.ALLOW_ALL)
    assert connect(post_as_gateway, "channel=anything", path="/open/")[1].status_code == 403
    assert connect(post_as_gateway, "channel=public", path="/open/")[1].status_code == 200


def test_view_hook_can_add_a_rule(post_as_gateway, monkeypatch):
    from tests.views import OpenView

    monkeypatch.setattr(OpenView, "can_join_channel", lambda self, request, name: not name.startswith("secret"))
    assert connect(post_as_gateway, "channel=secret-1", path="/open/")[1].status_code == 403
    assert connect(post_as_gateway, "channel=lobby", path="/open/")[1].status_code == 200


# --- 2. sessions end with the login ------------------------------------------------------


@pytest.fixture
def management(gateway):
    with ManagementServer() as server:
        ApiGateway.objects.filter(pk=gateway.pk).update(management_endpoint_url=server.url)
        yield server


def open_connection(post_as_gateway, browser, user):
    browser.force_login(user)
    raw = tokens.issue_token(user, browser.session.session_key)
    cid = new_connection_id()
    assert post_as_gateway("/ws/", cid, route="connect", query=f"ws_token={raw}").status_code == 200
    return cid


def connected(cid):
    return WebSocketSession.objects.get(connection_id=cid).connected


def test_logout_closes_exactly_that_sessions_sockets(
    post_as_gateway, user, management, django_capture_on_commit_callbacks
):
    tab_a, tab_b = Client(), Client()  # two browsers: two Django sessions
    socket_a = open_connection(post_as_gateway, tab_a, user)
    socket_b = open_connection(post_as_gateway, tab_b, user)
    row = WebSocketSession.objects.get(connection_id=socket_a)
    assert row.session_key_hash == login.hash_session_key(tab_a.session.session_key)
    assert tab_a.session.session_key not in row.session_key_hash
    with django_capture_on_commit_callbacks(execute=True):
        tab_a.logout()
    assert management.deleted == [socket_a]
    assert connected(socket_a) is False and connected(socket_b) is True
    # A message that was already on its way is refused.
    assert post_as_gateway("/ws/", socket_a, body={"handler": "whoami"}).status_code == 410


def test_password_change_closes_every_socket_of_the_user(
    post_as_gateway, user, other_user, management, django_capture_on_commit_callbacks
):
    sockets = [open_connection(post_as_gateway, Client(), user) for _ in range(2)]
    theirs = open_connection(post_as_gateway, Client(), other_user)
    with django_capture_on_commit_callbacks(execute=True):
        user.set_password("new password")
        user.save()
    assert sorted(management.deleted) == sorted(sockets)
    assert [connected(c) for c in sockets] == [False, False] and connected(theirs) is True


def test_deactivation_closes_every_socket(post_as_gateway, user, management, django_capture_on_commit_callbacks):
    socket = open_connection(post_as_gateway, Client(), user)
    with django_capture_on_commit_callbacks(execute=True):
        user.is_active = False
        user.save(update_fields=["is_active"])
    assert management.deleted == [socket] and connected(socket) is False


def test_deleting_the_user_closes_every_socket(post_as_gateway, user, management, django_capture_on_commit_callbacks):
    """Found in the adversarial review of issue #21: the rows went with the user (CASCADE) and
    API Gateway kept the sockets open."""
    socket = open_connection(post_as_gateway, Client(), user)
    with django_capture_on_commit_callbacks(execute=True):
        user.delete()
    assert management.deleted == [socket]
    assert not WebSocketSession.objects.filter(connection_id=socket).exists()


def test_unrelated_user_saves_cost_no_query(post_as_gateway, user, management, django_assert_num_queries):
    open_connection(post_as_gateway, Client(), user)
    with django_assert_num_queries(1):  # the UPDATE of last_login alone
        user.save(update_fields=["last_login"])
    assert management.deleted == []


def test_change_without_signals_is_caught_at_the_next_message(
    post_as_gateway, user, management, django_capture_on_commit_callbacks
):
    from django.contrib.auth.hashers import make_password

    socket = open_connection(post_as_gateway, Client(), user)
    type(user).objects.filter(pk=user.pk).update(password=make_password("changed behind our back"))
    with django_capture_on_commit_callbacks(execute=True):
        response = post_as_gateway("/ws/", socket, body={"handler": "whoami"})
    assert response.status_code == 410
    assert connected(socket) is False and management.deleted == [socket]


def test_message_check_costs_no_query(post_as_gateway, user, management):
    from django.db import connection

    socket = open_connection(post_as_gateway, Client(), user)
    with CaptureQueriesContext(connection) as context:
        assert post_as_gateway("/ws/", socket, body={"handler": "whoami"}).status_code == 200
    statements = [q["sql"] for q in context.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) <= 2, statements


# --- 4.1.0's secret header, accepted until the integrations are re-synced -------------------


def test_legacy_secret_header_only_for_upgraded_records(client, gateway):
    cid = new_connection_id()
    headers = integration_headers(gateway, cid, route="connect")
    secret = headers.pop("X-Gateway-Secret")
    headers["X-Ws-Gateway-Secret"] = secret
    assert client.post("/open/connect", headers=headers).status_code == 403
    ApiGateway.objects.filter(pk=gateway.pk).update(accepts_legacy_secret_header=True)
    assert client.post("/open/connect", headers=headers).status_code == 200
    headers["X-Ws-Gateway-Secret"] = "forged" * 8
    headers["connectionId"] = new_connection_id()
    assert client.post("/open/connect", headers=headers).status_code == 403


# --- 5. admin hygiene ----------------------------------------------------------------------


def test_sessions_are_read_only_in_the_admin(admin_client, session_row, other_user):
    url = reverse("admin:django_aws_api_gateway_websockets_websocketsession_change", args=[session_row.pk])
    page = admin_client.get(url)
    assert page.status_code == 200 and 'name="user"' not in page.content.decode()
    admin_client.post(url, {"user": other_user.pk, "channel_name": "x", "connected": "on"})
    session_row.refresh_from_db()
    assert session_row.user != other_user and session_row.channel_name == "room-1"
    assert admin_client.get(reverse("admin:django_aws_api_gateway_websockets_websocketsession_add")).status_code == 403


def test_deleting_a_gateway_marks_its_sessions_disconnected(gateway, session_row):
    gateway.delete()
    session_row.refresh_from_db()
    assert session_row.connected is False and session_row.api_gateway is None


def test_channel_permissions_in_the_admin(admin_client):
    channel("staff", Access.STAFF_ONLY)
    page = admin_client.get(reverse("admin:django_aws_api_gateway_websockets_channelpermission_changelist"))
    assert page.status_code == 200 and "staff" in page.content.decode()
    add = admin_client.get(reverse("admin:django_aws_api_gateway_websockets_channelpermission_add"))
    assert add.status_code == 200


def test_gateway_admin_shows_provisioning_state(admin_client, gateway):
    ApiGateway.objects.filter(pk=gateway.pk).update(
        provisioning_status="creating", last_error="LimitExceededException: slow down"
    )
    page = admin_client.get(reverse("admin:django_aws_api_gateway_websockets_apigateway_change", args=[gateway.pk]))
    text = page.content.decode()
    assert "LimitExceededException: slow down" in text and "claimed by a run since" in text
