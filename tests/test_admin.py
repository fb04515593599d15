import pytest
from django.urls import reverse

from django_aws_api_gateway_websockets import tokens
from django_aws_api_gateway_websockets.models import ConnectionRateLimit, WebSocketSession, WebSocketToken

from .management_server import ManagementServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(admin_client):
    return admin_client


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
