import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import models
from django.test import Client
from django.urls import reverse

from django_aws_api_gateway_websockets import tokens
from django_aws_api_gateway_websockets.admin import URL_FIELDS_HTTPS
from django_aws_api_gateway_websockets.models import ApiGateway, ConnectionRateLimit, WebSocketSession, WebSocketToken

from ..management_server import ManagementServer

pytestmark = pytest.mark.django_db


SESSIONS = "admin:django_aws_api_gateway_websockets_websocketsession_changelist"


@pytest.fixture
def staff(admin_client):
    return admin_client


def staff_with(django_user_model, username, *codenames):
    """A logged-in client of a staff user (not a superuser) holding exactly ``codenames``
    (of this app's models: ``view_websocketsession``, ``change_apigateway`` …), and the user."""
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    permissions = Permission.objects.filter(
        content_type__app_label="django_aws_api_gateway_websockets", codename__in=codenames
    )
    assert sorted(p.codename for p in permissions) == sorted(codenames)
    user.user_permissions.set(permissions)
    client = Client()
    client.force_login(user)
    return client, user


def our_model_admins():
    return [
        model_admin
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_config.name.startswith("django_aws_api_gateway_websockets")
    ]


def test_every_action_of_ours_declares_the_permissions_it_needs():
    """An action without ``permissions`` is offered to a view-only staff user: each of ours
    changes data or calls AWS, so each names a permission its ModelAdmin checks."""
    seen = []
    for model_admin in our_model_admins():
        for action, name, _description in model_admin._get_base_actions():
            permissions = getattr(action, "allowed_permissions", ())
            assert permissions, f"{type(model_admin).__name__}.{name} declares no permission"
            for permission in permissions:
                assert callable(getattr(model_admin, f"has_{permission}_permission", None)), (name, permission)
            seen.append(name)
    assert {"close_connections", "sync_api_gateway", "create_custom_domain", "delete_api_gateway"} <= set(seen)


@pytest.mark.parametrize(
    "model", ["apigateway", "apigatewayadditionalroute", "websocketsession", "websockettoken", "connectionratelimit"]
)
def test_changelists_render_and_search(staff, model, gateway, session_row):
    url = reverse(f"admin:django_aws_api_gateway_websockets_{model}_changelist")
    assert staff.get(url).status_code == 200
    assert staff.get(url, {"q": "abc"}).status_code == 200


def test_the_admin_section_is_named_for_people(staff):
    """Issue #23: it read "DJANGO AWS APIGATEWAY WEBSOCKETS" (the admin shows app names in capitals)."""
    page = staff.get(reverse("admin:index")).content.decode()
    assert "WebSockets (AWS API Gateway)" in page and "Django AWS ApiGateway Websockets" not in page


def test_gateway_change_page_masks_the_secret(staff, gateway):
    page = staff.get(reverse("admin:django_aws_api_gateway_websockets_apigateway_change", args=[gateway.pk]))
    assert page.status_code == 200
    assert gateway.integration_secret not in page.content.decode()
    assert gateway.integration_secret[-4:] in page.content.decode()


def test_token_admin_never_shows_a_token_and_is_read_only(staff, user):
    raw = tokens.issue_token(user, "s")
    row = WebSocketToken.objects.get()
    page = staff.get(reverse("admin:django_aws_api_gateway_websockets_websockettoken_change", args=[row.pk]))
    body = page.content.decode()
    assert raw not in body and row.token not in body
    assert staff.get(reverse("admin:django_aws_api_gateway_websockets_websockettoken_add")).status_code == 403


def test_rate_limit_admin_is_read_only(staff):
    ConnectionRateLimit.objects.create(ip_address="1.2.3.4", reason="token")
    assert staff.get(reverse("admin:django_aws_api_gateway_websockets_connectionratelimit_add")).status_code == 403
    page = staff.get(reverse("admin:django_aws_api_gateway_websockets_connectionratelimit_changelist"))
    assert "1.2.3.4" in page.content.decode()


def test_close_connections_action(staff, gateway):
    with ManagementServer() as server:
        gateway.management_endpoint_url = server.url
        gateway.save()
        open_row = WebSocketSession.objects.create(connection_id="c1", api_gateway=gateway)
        WebSocketSession.objects.create(connection_id="gone-1", api_gateway=gateway)
        url = reverse("admin:django_aws_api_gateway_websockets_websocketsession_changelist")
        response = staff.post(
            url,
            {
                "action": "close_connections",
                "_selected_action": list(WebSocketSession.objects.values_list("pk", flat=True)),
            },
            follow=True,
        )
    text = response.content.decode()
    assert "Closed 1 connection." in text
    assert "already gone" in text
    assert server.deleted == ["c1"]
    assert WebSocketSession.objects.get(connection_id="gone-1").connected is False
    assert WebSocketSession.objects.get(pk=open_row.pk).connected is True  # closed by AWS -> $disconnect later


def test_close_connections_is_not_offered_to_a_view_only_staff_user(django_user_model, gateway, session_row):
    client, user = staff_with(django_user_model, "viewer", "view_websocketsession")
    page = client.get(reverse(SESSIONS))
    assert page.status_code == 200 and session_row.connection_id in page.content.decode()
    assert page.context["action_form"] is None  # no action at all: Django's delete needs "delete"
    assert b"close_connections" not in page.content


def test_a_forged_close_connections_post_by_a_view_only_user_closes_nothing(django_user_model, gateway):
    client, user = staff_with(django_user_model, "viewer", "view_websocketsession")
    with ManagementServer() as server:
        gateway.management_endpoint_url = server.url
        gateway.save()
        row = WebSocketSession.objects.create(connection_id="c1", api_gateway=gateway)
        response = client.post(
            reverse(SESSIONS), {"action": "close_connections", "_selected_action": [row.pk]}, follow=True
        )
    assert response.status_code == 200
    assert "Closed" not in response.content.decode()
    assert server.deleted == []  # no DELETE @connections
    assert WebSocketSession.objects.get(pk=row.pk).connected is True


def test_close_connections_needs_the_change_permission_and_works_with_it(django_user_model, gateway):
    client, user = staff_with(django_user_model, "operator", "view_websocketsession", "change_websocketsession")
    with ManagementServer() as server:
        gateway.management_endpoint_url = server.url
        gateway.save()
        row = WebSocketSession.objects.create(connection_id="c1", api_gateway=gateway)
        page = client.get(reverse(SESSIONS))
        assert [name for name, _label in page.context["action_form"].fields["action"].choices if name] == [
            "close_connections"  # not Django's delete: that needs "delete"
        ]
        response = client.post(
            reverse(SESSIONS), {"action": "close_connections", "_selected_action": [row.pk]}, follow=True
        )
    assert "Closed 1 connection." in response.content.decode()
    assert server.deleted == ["c1"]
    # Still read-only: the change permission closes connections, it edits nothing.
    change = reverse("admin:django_aws_api_gateway_websockets_websocketsession_change", args=[row.pk])
    assert b'name="connection_id"' not in client.get(change).content


def test_admin_url_fields_default_to_https():
    """Found by type-checking the whole package (mypy with django-stubs, issue #14)."""
    assert {models.URLField: {"assume_scheme": "https"}} == URL_FIELDS_HTTPS
    assert admin.site.is_registered(ApiGateway)


def test_a_connections_page_lists_its_subscriptions(staff, session_row):
    from django_aws_api_gateway_websockets.models import Subscription

    Subscription.objects.create(connection=session_row, channel="notifications")
    page = staff.get(reverse("admin:django_aws_api_gateway_websockets_websocketsession_change", args=[session_row.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "room-1" in body and "notifications" in body
    found = staff.get(reverse(SESSIONS), {"q": "notifications"})
    assert session_row.connection_id in found.content.decode()
