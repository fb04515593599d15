"""The request path with a custom AUTH_USER_MODEL (--ds tests.settings_custom_user or
tests.settings_child_user; tests/request_path/test_request_sql.py runs both)."""

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_aws_api_gateway_websockets import login, tokens
from django_aws_api_gateway_websockets.db import sessions as session_sql
from django_aws_api_gateway_websockets.models import ConnectionRateLimit, WebSocketSession, WebSocketToken
from tests.helpers import connect

pytestmark = [
    pytest.mark.skipif(
        not (apps.is_installed("tests.user_models.custom_user") or apps.is_installed("tests.user_models.child_user")),
        reason="needs --ds tests.settings_custom_user or tests.settings_child_user",
    ),
    pytest.mark.django_db(transaction=True),
]


def _fields(instance):
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def test_connect_message_disconnect(client, user, post_as_gateway, token):
    with CaptureQueriesContext(connection) as ctx:
        cid, response = connect(post_as_gateway, f"ws_token={token}")
    assert response.status_code == 200, response.content
    if connection.vendor == "postgresql" and not user._meta.parents:
        assert any(q["sql"].startswith("WITH ") for q in ctx.captured_queries)
    row = WebSocketSession.objects.select_related("user").get(connection_id=cid)
    assert row.user == user and row.auth_hash == login.auth_hash(type(user).objects.get(pk=user.pk))
    assert ConnectionRateLimit.objects.get().user_id == user.pk
    assert WebSocketToken.objects.get().used is True

    loaded = session_sql.load_connection(cid)
    assert loaded.user is not None
    assert _fields(loaded.user) == _fields(row.user)
    assert _fields(loaded) == _fields(row)

    response = post_as_gateway("/ws/", cid, body={"handler": "whoami"})
    assert response.status_code == 200, response.content
    assert response.json()["user"] == user.get_username()
    assert WebSocketSession.objects.get(connection_id=cid).request_count == 2
    assert post_as_gateway("/ws/", cid, route="disconnect").status_code == 200
    assert WebSocketSession.objects.get(connection_id=cid).connected is False


def test_inactive_user_and_wrong_login_are_refused(client, user, post_as_gateway, token):
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    assert connect(post_as_gateway, f"ws_token={token}")[1].status_code == 401
    type(user).objects.filter(pk=user.pk).update(is_active=True)
    other = tokens.issue_token(user, "another-session-key")
    assert connect(post_as_gateway, f"ws_token={other}")[1].status_code == 401
    assert connect(post_as_gateway, f"ws_token={token}")[1].status_code == 200
    assert WebSocketSession.objects.count() == 1
