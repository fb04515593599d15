"""Provisioning state: the claim that lets one run create an API (two threads, on SQLite and
PostgreSQL), adoption of an API a stopped run made, the drift report, importing routes that
exist only in AWS, recorded route/integration ids, ``last_error``, and the 4.1.0 secret
header replaced by ``X-Gateway-Secret`` (Stubber: every parameter checked against the model).
"""

import threading
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone
from io import StringIO

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from django_aws_api_gateway_websockets import provisioning
from django_aws_api_gateway_websockets.models import ApiGateway, ApiGatewayAdditionalRoute
from django_aws_api_gateway_websockets.provisioning import claim as claims

from .test_provisioning import (  # noqa: F401 (fixtures)
    API,
    BASE,
    CHAT_URL,
    ENDPOINT,
    AwsState,
    api_tags,
    assert_converged,
    client,
    deployed,
    expected_sync,
    integration_fields,
    mapped_headers,
    queue,
    record,
    run,
)

LEGACY = "integration.request.header.X-Ws-Gateway-Secret"
STALE = timedelta(minutes=10)


def own_client():
    """A stubbed client of its own (one per thread: a Stubber queue is not shared)."""
    apigw = boto3.client("apigatewayv2", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    apigw.stubber = Stubber(apigw)
    apigw.stubber.activate()
    return apigw


def set_claim(record, *, age, api_id=""):
    """The record as a killed run (or the 4.1.0 release) left it: 'creating', no api id."""
    ApiGateway.objects.filter(pk=record.pk).update(
        provisioning_status="creating",
        api_id=api_id,
        api_endpoint="",
        deployment_id="",
        api_created=False,
        updated_on=timezone.now() - age,
    )
    record.refresh_from_db()


def api_in_aws(record, tags=None, name="chat"):
    return {
        "ApiId": API,
        "ApiEndpoint": ENDPOINT,
        "Name": name,
        "ProtocolType": "WEBSOCKET",
        "RouteSelectionExpression": "$request.body.action",
        "ApiKeySelectionExpression": "$request.header.x-api-key",
        "Description": "Chat",
        "Tags": api_tags(record) if tags is None else tags,
    }


# --- the claim --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_claims_exactly_one_wins(record):
    """The conditional UPDATE decides, in the database (run on SQLite and on PostgreSQL)."""
    barrier = threading.Barrier(2)
    results = []

    def attempt():
        mine = ApiGateway.objects.get(pk=record.pk)  # each run reads the record itself
        try:
            barrier.wait(timeout=5)
            results.append(claims.claim(mine))
        except provisioning.ProvisioningError as exc:
            results.append(str(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert claims.FRESH in results and len(results) == 2
    lost = next(r for r in results if r != claims.FRESH)
    assert lost.startswith(f"ApiGateway 'chat' (pk {record.pk}) is being created by another run")
    assert "--force-create" in lost and "--adopt API_ID" in lost
    assert ApiGateway.objects.get(pk=record.pk).provisioning_status == "creating"


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_creations_make_one_api(record):
    """Run A holds the claim while it creates the API; run B, started meanwhile, fails at
    once (its client has no response queued: any AWS call would fail differently), and A
    creates the one API."""
    inside, finished = threading.Event(), threading.Event()
    a_client, b_client = own_client(), own_client()
    queue(a_client.stubber, expected_sync(record, AwsState()))

    def hold(**kwargs):
        inside.set()
        finished.wait(timeout=10)

    a_client.meta.events.register("before-parameter-build.apigatewayv2.CreateApi", hold)
    outcome = {}

    def run_a():
        try:
            outcome["a"] = provisioning.sync_api(ApiGateway.objects.get(pk=record.pk), client=a_client)
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            outcome["a"] = exc
        finally:
            connection.close()

    def run_b():
        try:
            provisioning.sync_api(ApiGateway.objects.get(pk=record.pk), client=b_client)
        except provisioning.ProvisioningError as exc:
            outcome["b"] = str(exc)
        finally:
            finished.set()
            connection.close()

    a = threading.Thread(target=run_a)
    a.start()
    assert inside.wait(timeout=10)
    b = threading.Thread(target=run_b)
    b.start()
    b.join()
    a.join()
    assert isinstance(outcome["a"], provisioning.Plan), outcome["a"]
    assert "is being created by another run" in outcome["b"]
    a_client.stubber.assert_no_pending_responses()
    record.refresh_from_db()
    assert (record.api_id, record.provisioning_status, record.last_error) == (API, "deployed", "")


@pytest.mark.django_db
def test_a_claim_lost_to_a_run_that_recorded_the_api_uses_that_api(record):
    stale_copy = ApiGateway.objects.get(pk=record.pk)
    ApiGateway.objects.filter(pk=record.pk).update(api_id=API, provisioning_status="api_created")
    assert claims.claim(stale_copy) is None
    assert stale_copy.api_id == API


@pytest.mark.django_db
def test_a_recent_claim_refuses_without_any_aws_call_and_force_create_takes_it_over(record, client):
    set_claim(record, age=timedelta(seconds=30))
    with pytest.raises(provisioning.ProvisioningError, match=r"is being created by another run .*--force-create"):
        provisioning.sync_api(record, client=client)  # nothing queued: no AWS call was made
    record.refresh_from_db()
    assert record.provisioning_status == "creating"
    assert "is being created by another run" in record.last_error
    client.stubber.add_response("get_apis", {"Items": []}, {})  # a claim taken over: AWS is looked up
    queue(client.stubber, expected_sync(record, AwsState()))
    provisioning.sync_api(record, client=client, force_create=True)
    record.refresh_from_db()
    assert (record.api_id, record.provisioning_status, record.last_error) == (API, "deployed", "")


@pytest.mark.django_db
def test_a_stale_claim_adopts_the_api_the_killed_run_created(record, client):
    """The run was killed after create_api and a few more calls, before anything was saved:
    AWS has the API (with the record tag), its $connect integration and route."""
    _, state = run(record, client, AwsState(), fail_at=6)  # create_api, reads, $connect made
    set_claim(record, age=STALE)
    calls = expected_sync(ApiGateway.objects.get(pk=record.pk), state)
    assert calls[0].operation == "get_api"
    client.stubber.add_response(
        "get_apis", {"Items": [api_in_aws(record, tags={"team": "web"}, name="other"), calls[0].response]}, {}
    )
    queue(client.stubber, calls[1:])  # everything after get_api: the found API is reconciled
    plan = provisioning.sync_api(record, client=client)
    assert plan.steps[0] == f"adopt API {API} 'chat' (tagged for this record by a run that stopped before recording it)"
    assert not any(step.startswith("create WEBSOCKET API") for step in plan.steps)
    assert_converged(record, calls[-1].after)
    assert (record.provisioning_status, record.last_error) == ("deployed", "")


@pytest.mark.django_db
def test_a_timeout_on_create_api_leaves_a_stale_claim_and_the_next_run_adopts(record, client):
    """The connection broke while create_api was under way: AWS may have made the API."""

    def broken(**kwargs):
        raise ReadTimeoutError(endpoint_url="https://apigateway.eu-west-1.amazonaws.com/v2/apis")

    # A client without a Stubber (parameters still validated by botocore) whose request
    # fails the way a broken connection does, before anything leaves the machine.
    timing_out = boto3.client("apigatewayv2", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    timing_out.meta.events.register_first("before-call.apigatewayv2.CreateApi", broken)
    with pytest.raises(provisioning.ProvisioningError, match="AWS may have created the API"):
        provisioning.sync_api(record, client=timing_out)
    record.refresh_from_db()
    assert (record.provisioning_status, record.api_id) == ("creating", "")
    assert timezone.now() - record.updated_on >= claims.CLAIM_STALE_AFTER  # no need to wait
    assert record.last_error.startswith("create_api failed: ReadTimeoutError")
    # It had: the next run finds it by its tag and adopts it.
    calls = expected_sync(record, AwsState())
    client.stubber.add_response("get_apis", {"Items": [api_in_aws(record)]}, {})
    queue(client.stubber, calls[1:])
    plan = provisioning.sync_api(record, client=client)
    assert plan.steps[0].startswith(f"adopt API {API} 'chat'")
    record.refresh_from_db()
    assert (record.api_id, record.provisioning_status, record.last_error) == (API, "deployed", "")


@pytest.mark.django_db
def test_dry_run_of_a_stale_claim_says_it_would_adopt(record, client):
    _, state = run(record, client, AwsState(), fail_at=6)
    set_claim(record, age=STALE)
    calls = expected_sync(ApiGateway.objects.get(pk=record.pk), state)
    client.stubber.add_response("get_apis", {"Items": [calls[0].response]}, {})
    queue(client.stubber, [c for c in calls[1:] if c.operation.startswith("get_")])
    plan = provisioning.sync_api(record, client=client, dry_run=True)
    assert plan.steps[0] == f"adopt API {API} 'chat' (tagged for this record)"
    record.refresh_from_db()
    assert (record.api_id, record.provisioning_status) == ("", "creating")


@pytest.mark.django_db
def test_an_untagged_api_of_the_same_name_is_ambiguous_until_adopted(record, client):
    """A 4.1.0 run (which tagged nothing) claimed the record and may have made the API."""
    set_claim(record, age=STALE)
    legacy_api = api_in_aws(record, tags={})
    legacy_api["CreatedDate"] = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    client.stubber.add_response("get_apis", {"Items": [legacy_api]}, {})
    with pytest.raises(provisioning.ProvisioningError) as failure:
        provisioning.sync_api(record, client=client)
    message = str(failure.value)
    assert f"without this package's record tag: {API} (created 2026-11-01 10:00)" in message
    assert "--adopt API_ID" in message and "--force-create" in message
    record.refresh_from_db()
    assert record.provisioning_status == "pending" and record.api_id == ""  # the claim is given back
    assert record.last_error == message
    # --adopt records it, tags it, and reconciles it like any API.
    calls = expected_sync(record, AwsState(api=True))
    client.stubber.add_response("get_api", legacy_api, {"ApiId": API})
    client.stubber.add_response(
        "tag_resource", {}, {"ResourceArn": f"arn:aws:apigateway:eu-west-1::/apis/{API}", "Tags": api_tags(record)}
    )
    queue(client.stubber, calls[1:])
    plan = provisioning.sync_api(record, client=client, adopt=API)
    assert plan.steps[:2] == [f"adopt API {API} 'chat'", f"tag API: {provisioning.RECORD_TAG}, team"]
    assert_converged(record, calls[-1].after)
    assert record.provisioning_status == "deployed"


@pytest.mark.django_db
def test_adopt_refuses_a_record_that_has_another_api(record, client):
    ApiGateway.objects.filter(pk=record.pk).update(api_id="other1")
    record.refresh_from_db()
    with pytest.raises(provisioning.ProvisioningError, match="already records API other1"):
        provisioning.sync_api(record, client=client, adopt=API)


@pytest.mark.django_db
def test_an_api_of_the_same_name_tagged_for_another_record_is_not_ours(record, client):
    set_claim(record, age=STALE)
    other = api_in_aws(record, tags={provisioning.RECORD_TAG: "999/20260101T000000.000000Z"})
    other["ApiId"] = "zz9"
    client.stubber.add_response("get_apis", {"Items": [other]}, {})
    queue(client.stubber, expected_sync(record, AwsState()))
    plan = provisioning.sync_api(record, client=client)
    assert plan.steps[0] == "create WEBSOCKET API 'chat'"


# --- what a run records ------------------------------------------------------------------


@pytest.mark.django_db
def test_additional_routes_record_their_route_and_integration_ids(record, client):
    state = deployed(record, client)
    rid, iid, _ = state.routes["chat"]
    route = record.additional_routes.get()
    assert (route.route_id, route.integration_id, route.deployed) == (rid, iid, True)


@pytest.mark.django_db
def test_last_error_never_holds_the_secret_and_is_cleared_by_the_next_success(record, client):
    state = deployed(record, client)
    secret = record.integration_secret
    calls = expected_sync(record, state)
    queue(client.stubber, calls[:1])
    client.stubber.add_client_error(
        "get_routes", "BadRequestException", f"Invalid mapping expression specified: '{secret}'", http_status_code=400
    )
    with pytest.raises(provisioning.ProvisioningError):
        provisioning.sync_api(record, client=client)
    record.refresh_from_db()
    assert (
        record.last_error == "get_routes failed: BadRequestException: Invalid mapping expression specified: '********'"
    )
    assert secret not in record.last_error
    run(record, client, state)
    record.refresh_from_db()
    assert record.last_error == ""


# --- drift and routes only in AWS --------------------------------------------------------


@pytest.mark.django_db
def test_import_adds_aws_only_routes_to_the_record(record, client):
    state = deployed(record, client)
    rid, iid, _ = state.routes["chat"]
    calls = expected_sync(record, state)  # with the chat route on the record
    record.additional_routes.all().delete()
    queue(client.stubber, calls)
    client.stubber.add_response(
        "create_deployment", {"DeploymentId": "dep2"}, {"ApiId": API, "StageName": "production", "Description": "live"}
    )
    plan = provisioning.sync_api(record, client=client, aws_only_routes="import")
    assert plan.steps == [
        f"import route chat from AWS as an additional route (POST {CHAT_URL}, two-way)",
        "deploy stage 'production'",
    ]
    route = record.additional_routes.get()
    assert (route.route_key, route.name, route.integration_url, route.two_way) == ("chat", "chat", CHAT_URL, True)
    assert (route.route_id, route.integration_id, route.deployed) == (rid, iid, True)


@pytest.mark.django_db
def test_import_keeps_a_route_it_cannot_import(record, client):
    state = deployed(record, client)
    calls = expected_sync(record, state)
    record.additional_routes.all().delete()
    rid, iid, _ = state.routes["chat"]
    for call in calls:
        if call.operation == "get_integrations":
            for item in call.response["Items"]:
                if item["IntegrationId"] == iid:
                    item.update(
                        IntegrationType="AWS_PROXY", IntegrationUri="arn:aws:lambda:eu-west-1:123456789012:function:f"
                    )
    queue(
        client.stubber, [c for c in calls if not (c.operation == "get_route_responses" and c.params["RouteId"] == rid)]
    )
    plan = provisioning.sync_api(record, client=client, aws_only_routes="import")
    assert plan.steps == [] and not record.additional_routes.exists()
    assert "not imported: its integration is AWS_PROXY arn:aws:lambda" in plan.drift[0][1]


@pytest.mark.django_db
def test_dry_run_reports_drift_of_routes_integrations_and_stage(record, client):
    state = deployed(record, client)
    record.additional_routes.all().delete()
    ApiGatewayAdditionalRoute.objects.create(
        api_gateway=record, name="Typing", route_key="typing", integration_url="https://www.example.com/ws/typing"
    )
    record.target_base_endpoint = "https://new.example.com/ws/"
    record.throttling_burst_limit = 100
    record.save()
    rid, iid, _ = state.routes["chat"]
    calls = expected_sync(record, state)
    for call in calls:
        if call.operation == "get_stage":
            call.response.update(DefaultRouteSettings={"ThrottlingBurstLimit": 50, "ThrottlingRateLimit": 10.0})
    queue(client.stubber, [c for c in calls if c.operation.startswith("get_")])
    out = StringIO()
    call_command("sync_api_gateway", pk=record.pk, dry_run=True, stdout=out)
    text = out.getvalue()
    assert "Drift between AWS and the record:\n" in text
    assert (
        f"  only in AWS: route chat -> HTTP_PROXY {CHAT_URL} (two-way) [route {rid}, integration {iid}]: kept "
        "(--import-aws-routes adds it to the record, --delete-aws-only-routes deletes it)\n"
    ) in text
    assert "  only in record: route typing -> POST https://www.example.com/ws/typing\n" in text
    assert (
        "  different: integration i1 of route $connect: IntegrationUri 'https://www.example.com/ws/connect' in AWS, "
        "'https://new.example.com/ws/connect' in the record\n"
    ) in text
    assert "  different: stage 'production': ThrottlingBurstLimit 50 in AWS, 100 in the record\n" in text
    assert (
        "  only in AWS: stage 'production' ThrottlingRateLimit 10.0 (the record's field is blank: left alone)\n" in text
    )
    assert "  would create route typing\n" in text and "delete route" not in text
    assert record.integration_secret not in text


@pytest.mark.django_db
def test_dry_run_without_drift_says_so(record, client):
    state = deployed(record, client)
    queue(client.stubber, [c for c in expected_sync(record, state) if c.operation.startswith("get_")])
    out = StringIO()
    call_command("syncApiGateway", pk=record.pk, dry_run=True, stdout=out)
    assert "No drift: AWS matches the record." in out.getvalue()


def test_import_and_delete_options_exclude_each_other():
    with pytest.raises(CommandError):
        call_command(
            "syncApiGateway", "--pk", "1", "--import-aws-routes", "--delete-aws-only-routes", stdout=StringIO()
        )


# --- the 4.1.0 secret header -------------------------------------------------------------


def legacy_calls(record, state):
    """A sync of an API whose integrations send the 4.1.0 header: each integration is
    updated (the old key sent empty, which removes it) before its route is checked, then
    the stage is deployed."""
    calls = []
    secret = record.integration_secret
    legacy_params = {"integration.request.header.connectionId": "context.connectionId", LEGACY: f"'{secret}'"}
    for call in expected_sync(record, state):
        if call.operation == "get_integrations":
            for item in call.response["Items"]:
                item["RequestParameters"] = legacy_params
        if call.operation == "get_route_responses":
            rid = call.params["RouteId"]
            iid = next(r[1] for r in state.routes.values() if r[0] == rid)
            uri = state.integrations[iid][0]
            params = {"ApiId": API, "IntegrationId": iid, **integration_fields(uri, secret)}
            params["RequestParameters"] = {LEGACY: "", **mapped_headers(secret)}
            calls.append(("update_integration", {}, params))
        calls.append((call.operation, call.response, call.params, call.error))
    calls.append(
        (
            "create_deployment",
            {"DeploymentId": "dep2"},
            {"ApiId": API, "StageName": "production", "Description": "live"},
        )
    )
    return calls


def queue_calls(stub, calls, fail_at=None):
    for index, (operation, response, params, *error) in enumerate(calls):
        if index == fail_at:
            stub.add_client_error(
                operation, "TooManyRequestsException", "Too Many Requests", http_status_code=429, expected_params=params
            )
            return
        if error and error[0]:
            stub.add_client_error(operation, error[0], http_status_code=404, expected_params=params)
        else:
            stub.add_response(operation, response, params)


@pytest.fixture
def upgraded(record, client):
    """A record upgraded from 4.1.0: deployed, its integrations sending X-Ws-Gateway-Secret."""
    state = deployed(record, client)
    ApiGateway.objects.filter(pk=record.pk).update(accepts_legacy_secret_header=True)
    record.refresh_from_db()
    return state


@pytest.mark.django_db
def test_sync_replaces_the_legacy_header_then_stops_accepting_it(record, client, upgraded):
    calls = legacy_calls(record, upgraded)
    assert [c[0] for c in calls].count("update_integration") == 4
    seen_before_deploy = []
    client.meta.events.register(
        "before-parameter-build.apigatewayv2.CreateDeployment",
        lambda **kwargs: seen_before_deploy.append(ApiGateway.objects.get(pk=record.pk).accepts_legacy_secret_header),
    )
    queue_calls(client.stubber, calls)
    plan = provisioning.sync_api(record, client=client)
    assert plan.steps[0] == (
        f"update integration of route $connect (POST {BASE}connect, mapped headers: "
        "X-Gateway-Secret replaces the 4.1.0 header X-Ws-Gateway-Secret)"
    )
    assert plan.steps[-2:] == [
        "deploy stage 'production'",
        "stop accepting the 4.1.0 header X-Ws-Gateway-Secret (accepts_legacy_secret_header=False): "
        "the deployed stage sends X-Gateway-Secret",
    ]
    assert seen_before_deploy == [True]  # still accepted until the deployment succeeded
    record.refresh_from_db()
    assert record.accepts_legacy_secret_header is False and record.deployment_id == "dep2"


@pytest.mark.django_db
def test_legacy_header_dry_run_shows_the_planned_change(record, client, upgraded):
    calls = [c for c in legacy_calls(record, upgraded) if c[0].startswith("get_")]
    queue_calls(client.stubber, calls)
    plan = provisioning.sync_api(record, client=client, dry_run=True)
    assert sum("replaces the 4.1.0 header" in step for step in plan.steps) == 4
    assert plan.steps[-1].startswith("stop accepting the 4.1.0 header X-Ws-Gateway-Secret")
    assert any(
        "mapped header X-Ws-Gateway-Secret only in AWS (the 4.1.0 secret header)" in text for _, text in plan.drift
    )
    record.refresh_from_db()
    assert record.accepts_legacy_secret_header is True


@pytest.mark.django_db
def test_failed_deployment_keeps_accepting_the_legacy_header_until_a_rerun(record, client, upgraded):
    calls = legacy_calls(record, upgraded)
    queue_calls(client.stubber, calls, fail_at=len(calls) - 1)  # the deployment fails
    with pytest.raises(provisioning.ProvisioningError, match="create_deployment failed"):
        provisioning.sync_api(record, client=client)
    record.refresh_from_db()
    assert record.accepts_legacy_secret_header is True and record.deployment_id == ""
    assert record.last_error.startswith("create_deployment failed: TooManyRequestsException")
    # AWS now holds the new mapping; the re-run only deploys, then stops accepting the header.
    queue(client.stubber, expected_sync(record, upgraded))
    plan = provisioning.sync_api(record, client=client)
    assert plan.steps == ["deploy stage 'production'", plan.steps[-1]] and "stop accepting" in plan.steps[-1]
    record.refresh_from_db()
    assert record.accepts_legacy_secret_header is False and record.last_error == ""


@pytest.mark.django_db
def test_legacy_header_stays_accepted_while_an_aws_only_route_sends_it(record, client, upgraded):
    rid, iid, _ = upgraded.routes["chat"]
    calls = legacy_calls(record, upgraded)
    record.additional_routes.all().delete()
    # chat is now only in AWS: its integration is neither updated nor its responses read.
    calls = [
        c
        for c in calls
        if not (c[0] == "update_integration" and c[2]["IntegrationId"] == iid)
        and not (c[0] == "get_route_responses" and c[2]["RouteId"] == rid)
    ]
    queue_calls(client.stubber, calls)
    plan = provisioning.sync_api(record, client=client)
    assert not any(step.startswith("stop accepting") for step in plan.steps)
    assert (
        "legacy",
        "accepts_legacy_secret_header stays on: route(s) chat (only in AWS) still send X-Ws-Gateway-Secret; "
        "import them (--import-aws-routes) or delete them (--delete-aws-only-routes)",
    ) in plan.drift
    record.refresh_from_db()
    assert record.accepts_legacy_secret_header is True


@pytest.mark.django_db
def test_delete_resets_status_and_route_ids(record, client):
    deployed(record, client)
    client.stubber.add_response("get_api", {"ApiId": API}, {"ApiId": API})
    client.stubber.add_response("delete_api", {}, {"ApiId": API})
    provisioning.delete_api(record, client=client)
    record.refresh_from_db()
    assert record.provisioning_status == "pending"
    assert list(record.additional_routes.values_list("route_id", "integration_id", "deployed")) == [("", "", False)]


# --- against moto (a stateful AWS) -----------------------------------------------------


@pytest.fixture
def moto_apigw():
    """moto's apigatewayv2; what it does not implement (deployments, listing route
    responses) is answered here."""
    from botocore.awsrequest import AWSResponse
    from moto import mock_aws

    from django_aws_api_gateway_websockets import aws

    aws.clear_clients()
    deployments = []

    def create_deployment(params, **kwargs):
        deployments.append(params["url_path"])
        return AWSResponse("https://moto", 201, {}, None), {"DeploymentId": f"dep{len(deployments)}"}

    responses = set()  # route ids with a $default route response

    def route_id(params):
        return params["url_path"].split("/routes/")[1].split("/")[0]

    def create_route_response(params, **kwargs):
        responses.add(route_id(params))
        return AWSResponse("https://moto", 201, {}, None), {"RouteResponseId": f"rr-{route_id(params)}"}

    def get_route_responses(params, **kwargs):
        found = (
            [{"RouteResponseKey": "$default", "RouteResponseId": f"rr-{route_id(params)}"}]
            if route_id(params) in responses
            else []
        )
        return AWSResponse("https://moto", 200, {}, None), {"Items": found}

    with mock_aws():
        apigw = aws.get_client("apigatewayv2", region="eu-west-1")
        apigw.meta.events.register("before-call.apigatewayv2.CreateDeployment", create_deployment)
        apigw.meta.events.register("before-call.apigatewayv2.CreateRouteResponse", create_route_response)
        apigw.meta.events.register("before-call.apigatewayv2.GetRouteResponses", get_route_responses)
        yield apigw
    aws.clear_clients()


@pytest.mark.django_db
def test_a_killed_creation_is_adopted_not_duplicated_against_moto(record, moto_apigw):
    provisioning.sync_api(record, client=moto_apigw)
    record.refresh_from_db()
    first = record.api_id
    assert moto_apigw.get_apis()["Items"][0]["Tags"][provisioning.RECORD_TAG] == claims.record_tag_value(record)
    # As if the run had been killed right after create_api: nothing of it was saved.
    set_claim(record, age=STALE)
    plan = provisioning.sync_api(record, client=moto_apigw)
    record.refresh_from_db()
    assert plan.steps[0].startswith(f"adopt API {first} 'chat'")
    assert [api["ApiId"] for api in moto_apigw.get_apis()["Items"]] == [first]
    assert (record.api_id, record.provisioning_status, record.last_error) == (first, "deployed", "")
    assert record.additional_routes.get().route_id
    again = provisioning.sync_api(record, client=moto_apigw)
    # No drift; it deploys again only because moto's stage never records a deployment.
    assert again.steps == ["deploy stage 'production'"] and not again.drift


# --- commands and admin --------------------------------------------------------------------


@pytest.mark.django_db
def test_create_command_refuses_a_held_record_with_a_clear_message(record):
    set_claim(record, age=timedelta(seconds=5))
    with pytest.raises(CommandError, match=rf"ApiGateway 'chat' \(pk {record.pk}\) is being created by another run"):
        call_command("createApiGateway", pk=record.pk, stdout=StringIO())


@pytest.mark.django_db
def test_sync_command_imports_with_the_option_and_adopt_with_the_command(record, client):
    state = deployed(record, client)
    calls = expected_sync(record, state)
    record.additional_routes.all().delete()
    queue(client.stubber, calls)
    client.stubber.add_response(
        "create_deployment", {"DeploymentId": "dep2"}, {"ApiId": API, "StageName": "production", "Description": "live"}
    )
    out = StringIO()
    call_command("syncApiGateway", pk=record.pk, import_aws_routes=True, stdout=out)
    assert f"  import route chat from AWS as an additional route (POST {CHAT_URL}, two-way)\n" in out.getvalue()
    assert record.additional_routes.get().route_key == "chat"


@pytest.mark.django_db
def test_create_command_adopts_an_api(record, client):
    calls = expected_sync(record, AwsState(api=True))
    client.stubber.add_response("get_api", api_in_aws(record), {"ApiId": API})
    queue(client.stubber, calls[1:])
    out = StringIO()
    call_command("createApiGateway", pk=record.pk, adopt=API, stdout=out)
    assert f"  adopt API {API} 'chat'\n" in out.getvalue()
    assert ApiGateway.objects.get(pk=record.pk).api_id == API


@pytest.mark.django_db
def test_admin_sync_warns_about_drift(record, client, admin_user):
    from django.contrib import admin
    from django.contrib.messages import get_messages
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory

    from django_aws_api_gateway_websockets import admin_actions

    state = deployed(record, client)
    record.additional_routes.all().delete()
    queue(client.stubber, expected_sync(record, state))
    request = RequestFactory().post("/admin/")
    request.user, request.session = admin_user, SessionStore()
    request._messages = FallbackStorage(request)
    admin_actions.sync_api_gateway(admin.site._registry[ApiGateway], request, ApiGateway.objects.all())
    messages = [(m.level_tag, str(m)) for m in get_messages(request)]
    assert messages[0] == ("success", "chat: in sync and deployed (nothing to change)")
    assert messages[1][0] == "warning" and "drift between AWS and the record: only in AWS: route chat" in messages[1][1]
