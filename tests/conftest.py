import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache

from django_aws_api_gateway_websockets import tokens
from django_aws_api_gateway_websockets.channel_access import clear_channel_rules_cache
from django_aws_api_gateway_websockets.gateway_lookup import clear_gateway_cache
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession
from django_aws_api_gateway_websockets.testing import integration_headers
from django_aws_api_gateway_websockets.testing.client import new_connection_id


@pytest.fixture(autouse=True)
def _fresh_gateway_cache():
    # Records are rolled back between tests; a cached one must not outlive its test. Nor
    # must the channel rules, nor the exception mail throttle's keys (Django's cache).
    clear_gateway_cache()
    clear_channel_rules_cache()
    cache.clear()
    yield
    clear_gateway_cache()
    clear_channel_rules_cache()


@pytest.fixture
def gateway(db):
    return ApiGateway.objects.create(
        api_name="chat",
        api_id="abc123def4",
        region="eu-west-1",
        target_base_endpoint="https://www.example.com/ws/",
    )


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw")


@pytest.fixture
def grant():
    def grant(user, *codenames):
        for codename in codenames:
            app_label, name = codename.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=name))

    return grant


@pytest.fixture
def post_as_gateway(client, gateway):
    """POST to a view path exactly as API Gateway would, with optional overrides."""

    def post(path, connection_id, *, route="default", body=None, query="", headers=None, drop=()):
        all_headers = integration_headers(gateway, connection_id, route=route)
        all_headers.update(headers or {})
        for name in drop:
            all_headers.pop(name, None)
        url = f"{path}{route}" + (f"?{query}" if query else "")
        if body is None:
            return client.post(url, headers=all_headers)
        data = body if isinstance(body, (str, bytes)) else __import__("json").dumps(body)
        return client.post(url, data, content_type="application/json", headers=all_headers)

    return post


@pytest.fixture
def token(client, user):
    """A connect token of ``user``, issued to the login of ``client`` (now logged in)."""
    client.force_login(user)
    return tokens.issue_token(user, client.session.session_key)


@pytest.fixture
def session_row(gateway, user):
    return WebSocketSession.objects.create(
        connection_id=new_connection_id(), channel_name="room-1", user=user, api_gateway=gateway
    )


def pytest_report_header(config):
    from django.conf import settings

    return f"database: {settings.DATABASES['default']['ENGINE']}"
