"""Code written against the 4.x API (models, module helpers, admin actions), as the 4.x docs
taught it, run against this release: it keeps working, with the DeprecationWarnings that name
the replacement and the removal release (docs/upgrading.md, "Code that calls the package").

Each test is user code first (imports from the 4.x paths, 4.x return types), then what this
release adds to it.
"""

import json
import pickle
import warnings
from datetime import timedelta
from unittest.mock import Mock, patch

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.http import JsonResponse
from django.test import RequestFactory
from django.utils import timezone

from django_aws_api_gateway_websockets import aws, models, tokens
from django_aws_api_gateway_websockets.models import (
    ApiGateway,
    ConnectionRateLimit,
    WebSocketSession,
    WebSocketToken,
)
from django_aws_api_gateway_websockets.testing import ManagementAPICapture

from ..control_plane.test_provisioning import API, AwsState, client, expected_sync, queue, record  # noqa: F401 (fixtures)
from ..control_plane.test_provisioning_domain import expect_new_domain, stubs  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db

REMOVAL = r"removed in 6\.0"


@pytest.fixture
def no_warnings():
    """Fail on any warning: what 5.x-style code must get."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --- 1. get_boto3_client / get_region_name from models -------------------------------------------


def test_get_boto3_client_imports_from_models_with_a_warning_naming_aws(settings):
    settings.AWS_GATEWAY_REGION_NAME = "eu-west-1"
    with pytest.warns(DeprecationWarning, match=rf"models\.get_boto3_client .*{REMOVAL}.*aws\.get_boto3_client"):
        from django_aws_api_gateway_websockets.models import get_boto3_client
    assert get_boto3_client is aws.get_boto3_client
    client = get_boto3_client("apigatewayv2")
    assert (client.meta.service_model.service_name, client.meta.region_name) == ("apigatewayv2", "eu-west-1")


def test_get_region_name_imports_from_models_with_a_warning_naming_aws(settings):
    settings.AWS_GATEWAY_REGION_NAME = "eu-west-2"
    with pytest.warns(DeprecationWarning, match=rf"models\.get_region_name .*{REMOVAL}.*aws\.get_region_name"):
        from django_aws_api_gateway_websockets.models import get_region_name
    assert get_region_name() == "eu-west-2"


def test_get_region_name_without_a_region_still_raises_the_4x_runtime_error(settings, monkeypatch):
    # 4.x raised RuntimeError; 5.x's ImproperlyConfigured is both, so either ``except`` works.
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    settings.AWS_GATEWAY_REGION_NAME = settings.AWS_REGION_NAME = None  # also forgets the cached session
    with pytest.warns(DeprecationWarning):
        from django_aws_api_gateway_websockets.models import get_region_name
    with pytest.raises(RuntimeError, match="AWS_GATEWAY_REGION_NAME"):
        get_region_name()
    with pytest.raises(ImproperlyConfigured):
        get_region_name()


def test_the_4x_docs_send_mock_warns_that_it_intercepts_no_send(settings):
    """4.x docs/testing.rst, "Mocking message sending", as written: the patch no longer sees the
    send (it goes through the send backend), and the warning says so and names the in-memory
    backend. The capture here stands in for AWS, which the user's test would have posted to."""
    settings.AWS_GATEWAY_REGION_NAME = "eu-west-1"
    api_gateway = ApiGateway.objects.create(
        api_name="Test API",
        target_base_endpoint="https://testserver/ws/",
        api_id="abc123",
        api_created=True,
        stage_name="test",
    )
    session = WebSocketSession.objects.create(
        connection_id="connection-1", api_gateway=api_gateway, channel_name="general"
    )
    client = Mock()
    client.post_to_connection.return_value = {"ResponseMetadata": {"HTTPStatusCode": 200}}

    with (
        ManagementAPICapture() as aws_stand_in,
        pytest.warns(DeprecationWarning) as caught,
        patch("django_aws_api_gateway_websockets.models.get_boto3_client", return_value=client),
    ):
        session.send_message({"type": "test", "message": "Hello"})

    message = str(caught[0].message)
    assert "intercepts no send" in message and "may post to AWS" in message
    assert "django_aws_api_gateway_websockets.testing.InMemoryBackend" in message
    assert 'WEBSOCKETS["send_backend"]' in message and "ManagementAPICapture" in message
    client.post_to_connection.assert_not_called()  # the 4.x assertion fails now ...
    assert aws_stand_in.messages["connection-1"] == [{"type": "test", "message": "Hello"}]  # ... the send went out


def test_patch_of_a_moved_helper_works_and_leaves_the_module_clean():
    fake = Mock()
    with pytest.warns(DeprecationWarning), patch("django_aws_api_gateway_websockets.models.get_boto3_client", fake):
        assert models.get_boto3_client is fake  # set in the module while patched: no warning
    assert "get_boto3_client" not in vars(models)  # removed again, not left as the real function
    with pytest.warns(DeprecationWarning):
        assert models.get_boto3_client is aws.get_boto3_client


def test_other_missing_names_of_models_still_fail(no_warnings):
    with pytest.raises(AttributeError, match="no_such_helper"):
        models.no_such_helper  # noqa: B018
    with pytest.raises(ImportError):
        from django_aws_api_gateway_websockets.models import serialise_message  # noqa: F401 (4.1.0 private)


# --- 2. WebSocketToken.generate_token(...).token --------------------------------------------------


def test_the_4x_docs_single_use_token_example(django_user_model):
    """4.x docs/testing.rst, "Example token reuse test", as written."""
    user = django_user_model.objects.create_user(username="alice")
    session_key = "test-session"

    token = WebSocketToken.generate_token(user=user, session_key=session_key)

    with pytest.warns(DeprecationWarning, match=rf"\.token is deprecated .*{REMOVAL}.*returned value"):
        first_user = WebSocketToken.validate_and_consume(token_value=token.token, session_key=session_key)
    with pytest.warns(DeprecationWarning):
        second_user = WebSocketToken.validate_and_consume(token_value=token.token, session_key=session_key)

    assert first_user == user
    assert second_user is None


def test_the_4x_docs_custom_token_view_answers_the_raw_token(user):
    """4.x docs/websocket_tokens.rst, "Custom token endpoints": ``{"token": token.token}``."""
    request = RequestFactory().post("/api/ws-token/")
    request.user, request.session = user, SessionStore()
    request.session.create()
    assert WebSocketToken.check_rate_limit(request.user, max_tokens_per_minute=10)
    token = WebSocketToken.generate_token(user=request.user, session_key=request.session.session_key)
    with pytest.warns(DeprecationWarning):
        response = JsonResponse({"token": token.token, "expires_in": 60})
    raw = json.loads(response.content)["token"]
    assert type(raw) is str and raw == token
    assert WebSocketToken.objects.get().token == tokens.hash_token(raw)  # stored hashed, not the raw value
    assert WebSocketToken.validate_and_consume(raw, request.session.session_key) == user


def test_generate_token_returns_the_raw_token_string_without_warnings(user, no_warnings):
    raw = WebSocketToken.generate_token(user, "session-1")
    assert isinstance(raw, str) and raw == str(raw)
    assert json.loads(json.dumps({"token": raw})) == {"token": str(raw)}
    assert WebSocketToken.validate_and_consume(raw, "session-1") == user


def test_the_returned_token_answers_the_4x_row_attributes_with_a_warning(user):
    token = WebSocketToken.generate_token(user, "session-1")
    row = WebSocketToken.objects.get()
    with pytest.warns(DeprecationWarning, match=rf"\.user is deprecated .*{REMOVAL}"):
        assert token.user == user
    with pytest.warns(DeprecationWarning):
        assert (token.pk, token.id, token.created_at, token.used) == (row.pk, row.pk, row.created_at, False)
    with pytest.raises(AttributeError):
        token.no_such_attribute  # noqa: B018
    copied = pickle.loads(pickle.dumps(token))  # e.g. kept in a cache or a session
    with pytest.warns(DeprecationWarning):
        assert (copied, copied.pk) == (token, row.pk)


def test_a_4x_test_spends_ages_and_reloads_the_returned_token(user):
    """4.x tests set fields on generate_token()'s result and saved it (it was the row)."""
    token = WebSocketToken.generate_token(user=user, session_key="session-key")
    with pytest.warns(DeprecationWarning, match=rf"\.used is deprecated .*{REMOVAL}"):
        token.used = True
    with pytest.warns(DeprecationWarning, match=rf"\.save is deprecated .*{REMOVAL}"):
        token.save(update_fields=["used"])
    assert WebSocketToken.objects.get().used is True
    assert WebSocketToken.validate_and_consume(token, "session-key") is None  # spent: refused

    fresh = WebSocketToken.generate_token(user=user, session_key="session-key")
    assert WebSocketToken.validate_and_consume(fresh, "session-key", max_age_seconds=60) == user
    with pytest.warns(DeprecationWarning):
        fresh.refresh_from_db()
    with pytest.warns(DeprecationWarning):
        assert fresh.used is True

    old = WebSocketToken.generate_token(user=user, session_key="session-key")
    with pytest.warns(DeprecationWarning):
        old.created_at = timezone.now() - timedelta(minutes=5)
        old.save()
    assert WebSocketToken.validate_and_consume(old, "session-key", max_age_seconds=60) is None  # expired
    with pytest.warns(DeprecationWarning):
        old.delete()
    assert WebSocketToken.objects.count() == 2
    assert old == str(old) and "used" not in vars(old)  # the string itself is unchanged


def test_the_returned_token_keeps_the_session_key_and_other_names_to_itself(user, no_warnings):
    token = WebSocketToken.generate_token(user=user, session_key="session-key")
    with pytest.raises(AttributeError):
        token.session_key = "another"  # the row holds its keyed hash: a raw key would match nothing
    token.note = "mine"  # any other name stays on the string, as on any object
    assert token.note == "mine" and WebSocketToken.validate_and_consume(token, "session-key") == user


# --- 3. cleanup_expired / cleanup_old_records return QuerySet.delete()'s tuple -----------------


def test_cleanup_expired_returns_the_4x_delete_tuple(user, no_warnings):
    WebSocketToken.generate_token(user, "s")
    WebSocketToken.objects.update(created_at=timezone.now() - timedelta(minutes=10))
    WebSocketToken.generate_token(user, "s")

    n, _ = WebSocketToken.cleanup_expired()  # a 4.x cron task

    assert n == 1
    assert WebSocketToken.cleanup_expired(max_age_seconds=300) == (0, {})
    WebSocketToken.objects.update(used=True)  # 5.x also deletes used tokens, whatever their age
    assert WebSocketToken.cleanup_expired() == (1, {"django_aws_api_gateway_websockets.WebSocketToken": 1})


def test_cleanup_old_records_returns_the_4x_delete_tuple(no_warnings):
    for _ in range(2):
        ConnectionRateLimit.record_attempt(ip_address="192.0.2.1")
    ConnectionRateLimit.objects.update(attempt_time=timezone.now() - timedelta(days=8))
    ConnectionRateLimit.record_attempt(ip_address="192.0.2.1")

    n, per_model = ConnectionRateLimit.cleanup_old_records(days=7)

    assert (n, per_model) == (2, {"django_aws_api_gateway_websockets.ConnectionRateLimit": 2})
    assert ConnectionRateLimit.objects.count() == 1


def test_the_cleanup_command_still_reports_counts(user, no_warnings):
    WebSocketToken.generate_token(user, "s")
    WebSocketToken.objects.update(created_at=timezone.now() - timedelta(minutes=10))
    ConnectionRateLimit.record_attempt(ip_address="192.0.2.1")
    ConnectionRateLimit.objects.update(attempt_time=timezone.now() - timedelta(days=8))
    out = []
    call_command("cleanupWebSocketTokens", token_age=300, rate_limit_age=7, stdout=Mock(write=out.append))
    assert "Deleted 1 WebSocket token(s)." in "".join(out)
    assert "Deleted 1 connection attempt record(s)." in "".join(out)


# --- 4. record_attempt then check_rate_limit -------------------------------------------------------


def test_the_4x_docs_rate_limit_example(no_warnings):
    """4.x docs/testing.rst, "Testing rate limiting", as written (window 5 minutes; the
    configured window is 1)."""
    ip_address = "127.0.0.1"

    for _ in range(20):
        ConnectionRateLimit.record_attempt(ip_address=ip_address, successful=False)

    allowed, attempt_count = ConnectionRateLimit.check_rate_limit(
        ip_address=ip_address, max_attempts=20, window_minutes=5
    )

    assert allowed is False
    assert attempt_count == 20


@pytest.mark.parametrize("window_minutes", [1, 2, 5, 60, 0.5])
def test_check_rate_limit_sees_recorded_attempts_for_any_window(window_minutes, user, other_user):
    for _ in range(3):
        ConnectionRateLimit.record_attempt("192.0.2.1", user)
    ConnectionRateLimit.record_attempt("192.0.2.1", AnonymousUser())
    ConnectionRateLimit.record_attempt("192.0.2.7", other_user)

    check = ConnectionRateLimit.check_rate_limit
    assert check("192.0.2.1", max_attempts=5, window_minutes=window_minutes) == (True, 4)
    assert check("192.0.2.1", max_attempts=4, window_minutes=window_minutes) == (False, 4)
    # 4.x: the user's attempts count from any address; the answer then gives the user's count.
    assert check("192.0.2.9", user, max_attempts=3, window_minutes=window_minutes) == (False, 3)
    assert check("192.0.2.9", user, max_attempts=4, window_minutes=window_minutes) == (True, 0)
    assert check("192.0.2.9", AnonymousUser(), max_attempts=1, window_minutes=window_minutes) == (True, 0)


def test_check_rate_limit_forgets_attempts_older_than_its_window():
    for _ in range(20):
        ConnectionRateLimit.record_attempt(ip_address="192.0.2.1")
    ConnectionRateLimit.objects.update(attempt_time=timezone.now() - timedelta(minutes=6))
    check = ConnectionRateLimit.check_rate_limit
    assert check(ip_address="192.0.2.1", max_attempts=20, window_minutes=5) == (True, 0)
    assert check(ip_address="192.0.2.1", max_attempts=20, window_minutes=10) == (False, 20)


def test_check_rate_limit_still_sees_the_views_counters_without_audit_rows(settings):
    # The view counts with the counters (ratelimit.hit) and may keep no audit row
    # (rate_limit_audit "off"): the configured window's counters still answer.
    from django_aws_api_gateway_websockets import ratelimit

    for _ in range(3):
        ratelimit.hit("192.0.2.1")
    assert not ConnectionRateLimit.objects.exists()
    assert ConnectionRateLimit.check_rate_limit("192.0.2.1", max_attempts=3, window_minutes=1) == (False, 3)


# --- 9. admin.create_api_gateway / admin.create_custom_domain -------------------------------------


def admin_request(user):
    request = RequestFactory().post("/admin/")
    request.user, request.session = user, SessionStore()
    request._messages = FallbackStorage(request)
    return request


def test_the_4x_admin_actions_import_from_admin_and_create_the_api(record, client, admin_user):  # noqa: F811
    from django.contrib import admin as django_admin

    from django_aws_api_gateway_websockets.admin import create_api_gateway, create_custom_domain

    assert create_api_gateway.allowed_permissions == create_custom_domain.allowed_permissions == ["change"]
    queue(client.stubber, expected_sync(record, AwsState()))
    request = admin_request(admin_user)
    create_api_gateway(django_admin.site._registry[ApiGateway], request, ApiGateway.objects.all())
    [message] = get_messages(request)
    assert message.level_tag == "success"
    assert str(message).startswith("chat: API created and deployed (create WEBSOCKET API 'chat';")
    record.refresh_from_db()
    assert record.api_created and record.api_id == API


def test_the_4x_create_action_leaves_created_apis_to_the_sync_action(record, admin_user):  # noqa: F811
    from django.contrib import admin as django_admin

    from django_aws_api_gateway_websockets.admin import create_api_gateway

    ApiGateway.objects.update(api_id=API, api_created=True)
    request = admin_request(admin_user)
    create_api_gateway(django_admin.site._registry[ApiGateway], request, ApiGateway.objects.all())
    assert [(m.level_tag, str(m)) for m in get_messages(request)] == [
        ("warning", "chat: already created; use the action 'Sync API Gateway with AWS' to apply changes.")
    ]


def test_the_4x_create_custom_domain_action_runs_the_5x_provisioning(record, admin_user):  # noqa: F811
    from django.contrib import admin as django_admin

    from django_aws_api_gateway_websockets.admin import create_custom_domain

    request = admin_request(admin_user)
    create_custom_domain(django_admin.site._registry[ApiGateway], request, ApiGateway.objects.all())
    assert [(m.level_tag, str(m)) for m in get_messages(request)] == [
        ("error", f"chat: create the API first (create_api_gateway --pk {record.pk}).")
    ]


# --- 10. ApiGateway.create_gateway() / create_custom_domain() ---------------------------------------


def test_the_4x_create_gateway_model_method_creates_the_api(record, client):  # noqa: F811
    """4.x scripts and tasks called the model method (the 4.x createApiGateway command did)."""
    queue(client.stubber, expected_sync(record, AwsState()))
    gateway = ApiGateway.objects.get(pk=record.pk, api_created=False)
    with pytest.warns(DeprecationWarning, match=rf"create_gateway\(\) .*{REMOVAL}.*provisioning\.sync_api"):
        assert gateway.create_gateway() is None
    gateway.refresh_from_db()
    assert (gateway.api_created, gateway.api_id, gateway.provisioning_status) == (True, API, "deployed")

    with pytest.warns(DeprecationWarning):
        gateway.create_gateway()  # 4.x: a created API is left alone (no AWS call is queued)


def test_the_4x_create_custom_domain_model_method_keeps_its_value_errors(record):  # noqa: F811
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="^The API needs to be created"):
        record.create_custom_domain()
    record.api_created, record.api_id = True, API
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="^A Certificate ARN is required$"):
        record.create_custom_domain()


def test_the_4x_create_custom_domain_model_method_creates_the_domain(record, stubs):  # noqa: F811
    from ..control_plane.test_provisioning_domain import CERT, DOMAIN, GATEWAY_DOMAIN

    ApiGateway.objects.filter(pk=record.pk).update(
        api_id=API, api_created=True, domain_name=DOMAIN, certificate_arn=CERT, hosted_zone_id="Z123"
    )
    expect_new_domain(stubs)
    gateway = ApiGateway.objects.get(pk=record.pk)
    with pytest.warns(DeprecationWarning, match=rf"create_custom_domain\(\) .*{REMOVAL}.*provisioning"):
        assert gateway.create_custom_domain() is None
    gateway.refresh_from_db()
    assert (gateway.custom_domain_created, gateway.api_gateway_domain_name) == (True, GATEWAY_DOMAIN)


# --- 11. the 4.x token admin's token_preview column -------------------------------------------------


def test_a_4x_token_admin_listing_token_preview_still_loads(user):
    from django.contrib.admin import AdminSite

    from django_aws_api_gateway_websockets.admin import WebSocketTokenAdmin

    class MyTokenAdmin(WebSocketTokenAdmin):
        list_display = ("token_preview", "user", "session_key", "created_at", "used")  # 4.x's columns

    admin = MyTokenAdmin(WebSocketToken, AdminSite())
    assert admin.check() == []  # admin.E108 without the method: the site would not start
    raw = WebSocketToken.generate_token(user, "s")
    row = WebSocketToken.objects.get()
    with pytest.warns(DeprecationWarning, match=rf"token_preview is deprecated .*{REMOVAL}"):
        preview = admin.token_preview(row)
    assert preview == row.token[:16] + "..." and str(raw)[:16] not in preview  # the hash, never the token


def test_in_channel_of_a_connect_without_channel_finds_the_connections_without_one(ws_client, user, other_user):
    """4.x code sends to ``in_channel(session.channel_name)``; a connect without ``channel``
    (and no default) has ``channel_name == ""`` and no subscription: ``in_channel("")`` is the
    connections holding no channel (the tutorial's chat found nobody after subscriptions came)."""
    lobby, room = ws_client("/ws/", user=user), ws_client("/ws/", user=other_user)
    lobby.connect()
    room.connect(channel="room")
    lobby_row = WebSocketSession.objects.get(connection_id=lobby.connection_id)
    assert lobby_row.channel_name == ""
    assert list(WebSocketSession.objects.in_channel(lobby_row.channel_name)) == [lobby_row]
    room.unsubscribe("room")  # a connection that left every channel holds none either
    assert WebSocketSession.objects.in_channel("").count() == 2
