"""Admin actions report per record what really happened in AWS (Stubber behind them)."""

import botocore.client
import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory
from django.urls import reverse

from django_aws_api_gateway_websockets import admin_actions
from django_aws_api_gateway_websockets.models import ApiGateway

from .test_admin import staff_with
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


@pytest.fixture
def aws_calls(monkeypatch):
    """Every AWS API call made in the test (any client, stubbed or not), by operation name."""
    calls = []
    make_api_call = botocore.client.BaseClient._make_api_call

    def recording(self, operation_name, api_params):
        calls.append(operation_name)
        return make_api_call(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return calls


def offered(page):
    form = page.context["action_form"]
    return [name for name, _label in form.fields["action"].choices if name] if form else []


ACTIONS = ["sync_api_gateway", "create_custom_domain", "delete_api_gateway"]


def test_no_action_is_offered_to_a_view_only_staff_user(record, django_user_model):
    viewer, _user = staff_with(django_user_model, "viewer", "view_apigateway")
    page = viewer.get(reverse(CHANGELIST))
    assert page.status_code == 200 and b"chat" in page.content
    assert offered(page) == []


@pytest.mark.parametrize("action", ACTIONS)
def test_a_forged_action_post_by_a_view_only_user_does_nothing(record, client, aws_calls, django_user_model, action):
    ApiGateway.objects.update(api_id=API, api_created=True)  # each action would call AWS
    before = ApiGateway.objects.values().get()
    viewer, _user = staff_with(django_user_model, "viewer", "view_apigateway")
    page = viewer.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [record.pk], admin_actions.CONFIRM_FIELD: "yes"},
        follow=True,
    )
    assert page.status_code == 200
    assert b"Yes, delete from AWS" not in page.content
    assert [str(m) for m in page.context["messages"]] == []
    assert aws_calls == []  # nothing sent to AWS
    assert ApiGateway.objects.values().get() == before


@pytest.mark.parametrize(
    "codename,expected",
    [
        ("change_apigateway", ["sync_api_gateway", "create_custom_domain"]),
        ("delete_apigateway", ["delete_selected", "delete_api_gateway"]),
    ],
)
def test_actions_are_offered_by_the_permission_each_needs(record, django_user_model, codename, expected):
    staff, _user = staff_with(django_user_model, "operator", "view_apigateway", codename)
    assert offered(staff.get(reverse(CHANGELIST))) == expected


def test_sync_runs_for_a_staff_user_with_the_change_permission(record, client, aws_calls, django_user_model):
    operator, _user = staff_with(django_user_model, "operator", "view_apigateway", "change_apigateway")
    queue(client.stubber, expected_sync(record, AwsState()))
    page = operator.post(
        reverse(CHANGELIST), {"action": "sync_api_gateway", "_selected_action": [record.pk]}, follow=True
    )
    [message] = [str(m) for m in page.context["messages"]]
    assert message.startswith("chat: in sync and deployed (create WEBSOCKET API 'chat';")
    assert aws_calls and ApiGateway.objects.get().api_created


def test_create_custom_domain_runs_for_a_staff_user_with_the_change_permission(record, django_user_model):
    operator, _user = staff_with(django_user_model, "operator", "view_apigateway", "change_apigateway")
    page = operator.post(
        reverse(CHANGELIST), {"action": "create_custom_domain", "_selected_action": [record.pk]}, follow=True
    )
    assert [str(m) for m in page.context["messages"]] == [
        f"chat: create the API first (create_api_gateway --pk {record.pk})."  # the action ran
    ]


def test_delete_runs_for_a_staff_user_with_the_delete_permission(record, client, django_user_model):
    ApiGateway.objects.update(api_id=API, api_created=True)
    operator, _user = staff_with(django_user_model, "operator", "view_apigateway", "delete_apigateway")
    client.stubber.add_response("get_api", {"ApiId": API}, {"ApiId": API})
    client.stubber.add_response("delete_api", {}, {"ApiId": API})
    page = operator.post(
        reverse(CHANGELIST),
        {"action": "delete_api_gateway", "_selected_action": [record.pk], admin_actions.CONFIRM_FIELD: "yes"},
        follow=True,
    )
    assert [str(m) for m in page.context["messages"]] == [
        f"chat: deleted from AWS (delete API {API} with its routes, integrations and stages)"
    ]
    assert ApiGateway.objects.get().api_id == ""
