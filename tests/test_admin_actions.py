"""Admin actions report per record what really happened in AWS (Stubber behind them)."""

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory
from django.urls import reverse

from django_aws_api_gateway_websockets import admin_actions
from django_aws_api_gateway_websockets.models import ApiGateway

from .test_provisioning import API, AwsState, client, expected_sync, queue, record  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_aws_api_gateway_websockets_apigateway_changelist"


def post(admin_user, data=None):
    request = RequestFactory().post("/admin/", data or {})
    request.user = admin_user
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    return request


def texts(request):
    return [(m.level_tag, str(m)) for m in get_messages(request)]


@pytest.fixture
def modeladmin():
    return admin.site._registry[ApiGateway]


def test_sync_creates_a_new_api_and_reports_the_steps_taken(record, client, modeladmin, admin_user):
    queue(client.stubber, expected_sync(record, AwsState()))
    request = post(admin_user)
    admin_actions.sync_api_gateway(modeladmin, request, ApiGateway.objects.all())
    [(level, text)] = texts(request)
    assert level == "success" and text.startswith("chat: in sync and deployed (create WEBSOCKET API 'chat';")
    assert ApiGateway.objects.get().api_created


def test_the_registered_actions(modeladmin):
    assert [action.__name__ for action in modeladmin.actions] == [
        "sync_api_gateway",
        "create_custom_domain",
        "delete_api_gateway",
    ]


def test_failure_is_an_error_message_and_no_flag(record, client, modeladmin, admin_user):
    client.stubber.add_client_error("create_api", "BadRequestException", "bad name", http_status_code=400)
    request = post(admin_user)
    admin_actions.sync_api_gateway(modeladmin, request, ApiGateway.objects.all())
    assert texts(request) == [("error", "chat: create_api failed: BadRequestException: bad name")]
    assert ApiGateway.objects.get().api_created is False


def test_each_record_gets_its_own_truthful_message(record, client, modeladmin, admin_user):
    other = ApiGateway.objects.create(api_name="alerts", target_base_endpoint=None)
    queue(client.stubber, expected_sync(record, AwsState()))
    request = post(admin_user)
    admin_actions.sync_api_gateway(modeladmin, request, ApiGateway.objects.order_by("pk"))
    (level1, text1), (level2, text2) = texts(request)
    assert level1 == "success" and text1.startswith("chat: in sync and deployed")
    assert (level2, text2) == ("error", "alerts: set target_base_endpoint (e.g. https://www.example.com/ws/) first.")
    assert not ApiGateway.objects.get(pk=other.pk).api_created


def test_custom_domain_failure_message(record, modeladmin, admin_user):
    request = post(admin_user)
    admin_actions.create_custom_domain(modeladmin, request, ApiGateway.objects.all())
    assert texts(request) == [("error", f"chat: create the API first (create_api_gateway --pk {record.pk}).")]


def test_delete_asks_for_confirmation_in_the_admin_then_deletes(record, client, admin_client):
    ApiGateway.objects.update(api_id=API, api_created=True)
    url = reverse(CHANGELIST)
    page = admin_client.post(url, {"action": "delete_api_gateway", "_selected_action": [record.pk]})
    assert page.status_code == 200 and b"Yes, delete from AWS" in page.content and API.encode() in page.content
    assert ApiGateway.objects.get().api_id == API  # nothing deleted yet

    client.stubber.add_response("get_api", {"ApiId": API}, {"ApiId": API})
    client.stubber.add_response("delete_api", {}, {"ApiId": API})
    page = admin_client.post(
        url,
        {"action": "delete_api_gateway", "_selected_action": [record.pk], admin_actions.CONFIRM_FIELD: "yes"},
        follow=True,
    )
    assert [str(m) for m in page.context["messages"]] == [
        f"chat: deleted from AWS (delete API {API} with its routes, integrations and stages)"
    ]
    assert ApiGateway.objects.get().api_id == ""
