"""``sync_api`` against botocore's Stubber: every call and its exact parameters are expected
(and validated against the AWS service model).

``AwsState`` is what AWS holds; ``expected_sync`` is the specification of a run: from a given
state, exactly which calls a sync must make, and the state after each call. Failing the run
at any call and running it again must then converge on the same AWS state, with no
duplicate, and a third run must change nothing.
"""

import copy
from dataclasses import dataclass, field

import pytest
from botocore.stub import Stubber

from django_aws_api_gateway_websockets import aws, provisioning, security
from django_aws_api_gateway_websockets.models import ApiGateway, ApiGatewayAdditionalRoute
from django_aws_api_gateway_websockets.provisioning.claim import record_tag_value

pytestmark = pytest.mark.django_db

API = "a1b2c3"
ENDPOINT = f"wss://{API}.execute-api.eu-west-1.amazonaws.com"
BASE = "https://www.example.com/ws/"
CHAT_URL = "https://www.example.com/ws/chat"


@pytest.fixture
def record():
    gateway = ApiGateway.objects.create(
        api_name="chat",
        api_description="Chat",
        target_base_endpoint=BASE,
        region="eu-west-1",
        stage_name="production",
        stage_description="live",
        tags={"team": "web"},
    )
    ApiGatewayAdditionalRoute.objects.create(
        api_gateway=gateway, name="Chat", route_key="chat", integration_url=CHAT_URL, two_way=True
    )
    return gateway


def stubbed(service):
    client = aws.get_client(service, region="eu-west-1")
    stubber = Stubber(client)
    stubber.activate()
    client.stubber = stubber
    return client


@pytest.fixture
def client():
    aws.clear_clients()
    apigw = stubbed("apigatewayv2")
    yield apigw
    apigw.stubber.assert_no_pending_responses()
    apigw.stubber.deactivate()
    aws.clear_clients()


def mapped_headers(secret):
    return {
        "integration.request.header.connectionId": "context.connectionId",
        "integration.request.header.X-Source-Ip": "context.identity.sourceIp",
        "integration.request.header.X-Gateway-Secret": f"'{secret}'",
    }


def integration_fields(uri, secret):
    return {
        "IntegrationMethod": "POST",
        "IntegrationUri": uri,
        "ConnectionType": "INTERNET",
        "RequestParameters": mapped_headers(secret),
        "TimeoutInMillis": 29000,
    }


def api_tags(record):
    """The record's tags and the tag naming the record, which every API gets."""
    return {**record.tags, provisioning.RECORD_TAG: record_tag_value(record)}


def desired(record):
    base = record.target_base_endpoint
    return [
        ("$connect", base + "connect", False),
        ("$disconnect", base + "disconnect", False),
        ("$default", base + "default", record.default_route_two_way),
        *[(r.route_key, r.integration_url, r.two_way) for r in record.additional_routes.all()],
    ]


@dataclass
class AwsState:
    api: bool = False
    integrations: dict = field(default_factory=dict)  # id -> (uri, secret)
    routes: dict = field(default_factory=dict)  # route key -> (route id, integration id, two-way)
    responses: set = field(default_factory=set)  # route ids with a $default route response
    stage: bool = False
    deployments: int = 0
    ids: int = 0

    def new_id(self, prefix):
        self.ids += 1
        return f"{prefix}{self.ids}"


@dataclass
class Call:
    operation: str
    response: dict | None
    params: dict
    after: AwsState
    error: str | None = None


def expected_sync(record, state):
    """The calls a sync of ``record`` must make when AWS holds ``state``, in order."""
    s = copy.deepcopy(state)
    calls = []
    changed = False

    def expect(operation, response, params, error=None):
        calls.append(Call(operation, response, params, copy.deepcopy(s), error))

    if s.api:
        expect(
            "get_api",
            {
                "ApiId": API,
                "ApiEndpoint": ENDPOINT,
                "Name": "chat",
                "ProtocolType": "WEBSOCKET",
                "RouteSelectionExpression": "$request.body.action",
                "ApiKeySelectionExpression": "$request.header.x-api-key",
                "Description": "Chat",
                "Tags": api_tags(record),
            },
            {"ApiId": API},
        )
    else:
        s.api, changed = True, True
        expect(
            "create_api",
            {"ApiId": API, "ApiEndpoint": ENDPOINT, "Name": "chat", "ProtocolType": "WEBSOCKET"},
            {
                "Name": "chat",
                "ProtocolType": "WEBSOCKET",
                "RouteSelectionExpression": "$request.body.action",
                "ApiKeySelectionExpression": "$request.header.x-api-key",
                "Description": "Chat",
                "Tags": api_tags(record),
            },
        )
    expect(
        "get_routes",
        {
            "Items": [
                {
                    "RouteKey": key,
                    "RouteId": rid,
                    "Target": f"integrations/{iid}",
                    **({"RouteResponseSelectionExpression": "$default"} if two_way else {}),
                }
                for key, (rid, iid, two_way) in s.routes.items()
            ]
        },
        {"ApiId": API},
    )
    expect(
        "get_integrations",
        {
            "Items": [
                {"IntegrationId": iid, "IntegrationType": "HTTP_PROXY", **integration_fields(uri, secret)}
                for iid, (uri, secret) in s.integrations.items()
            ]
        },
        {"ApiId": API},
    )
    secret = record.integration_secret
    orphans = {
        iid: uri for iid, (uri, _) in s.integrations.items() if iid not in {route[1] for route in s.routes.values()}
    }
    for key, uri, two_way in desired(record):
        route = s.routes.get(key)
        iid = route[1] if route else next((i for i, u in orphans.items() if u == uri), None)
        orphans.pop(iid, None)
        if iid is None:
            iid, changed = s.new_id("i"), True
            s.integrations[iid] = (uri, secret)
            expect(
                "create_integration",
                {"IntegrationId": iid},
                {"ApiId": API, "IntegrationType": "HTTP_PROXY", **integration_fields(uri, secret)},
            )
        elif s.integrations[iid] != (uri, secret):
            s.integrations[iid], changed = (uri, secret), True
            expect("update_integration", {}, {"ApiId": API, "IntegrationId": iid, **integration_fields(uri, secret)})
        if route is None:
            rid, changed = s.new_id("r"), True
            s.routes[key] = (rid, iid, two_way)
            params = {
                "ApiId": API,
                "AuthorizationType": "NONE",
                "ApiKeyRequired": False,
                "RouteKey": key,
                "Target": f"integrations/{iid}",
            }
            if two_way:
                params["RouteResponseSelectionExpression"] = "$default"
            expect("create_route", {"RouteId": rid, "RouteKey": key}, params)
            if two_way:
                s.responses.add(rid)
                expect(
                    "create_route_response",
                    {"RouteResponseId": f"rr-{rid}"},
                    {"ApiId": API, "RouteId": rid, "RouteResponseKey": "$default"},
                )
            continue
        rid = route[0]
        expect(
            "get_route_responses",
            {"Items": [{"RouteResponseKey": "$default", "RouteResponseId": f"rr-{rid}"}] if rid in s.responses else []},
            {"ApiId": API, "RouteId": rid},
        )
        if two_way and rid not in s.responses:
            s.responses.add(rid)
            changed = True
            expect(
                "create_route_response",
                {"RouteResponseId": f"rr-{rid}"},
                {"ApiId": API, "RouteId": rid, "RouteResponseKey": "$default"},
            )
    for iid in orphans:
        del s.integrations[iid]
        changed = True
        expect("delete_integration", {}, {"ApiId": API, "IntegrationId": iid})
    stage_params = {"ApiId": API, "StageName": "production"}
    if s.stage:
        stage = {"StageName": "production", "Description": "live"}
        if s.deployments:
            stage["DeploymentId"] = f"dep{s.deployments}"
        expect("get_stage", stage, stage_params)
    else:
        expect("get_stage", None, stage_params, error="NotFoundException")
        s.stage, changed = True, True
        expect("create_stage", {"StageName": "production"}, {**stage_params, "Description": "live"})
    if changed or not record.deployment_id or not s.deployments:
        s.deployments += 1
        expect("create_deployment", {"DeploymentId": f"dep{s.deployments}"}, {**stage_params, "Description": "live"})
    return calls


def queue(stub, calls, fail_at=None):
    """Queue ``calls`` on the Stubber; the call at ``fail_at`` gets an AWS error instead.
    Returns the AWS state once the queued calls have run."""
    state = None
    for index, call in enumerate(calls):
        if index == fail_at:
            stub.add_client_error(
                call.operation,
                "TooManyRequestsException",
                "Too Many Requests",
                http_status_code=429,
                expected_params=call.params,
            )
            return state
        if call.error:
            stub.add_client_error(call.operation, call.error, http_status_code=404, expected_params=call.params)
        else:
            stub.add_response(call.operation, call.response, call.params)
        state = call.after
    return state


def run(record, client, start, fail_at=None):
    """One sync from AWS state ``start``; returns (plan or error, AWS state afterwards)."""
    record.refresh_from_db()
    calls = expected_sync(record, start)
    end = queue(client.stubber, calls, fail_at)
    before = calls[fail_at - 1].after if fail_at else start
    if fail_at is not None:
        with pytest.raises(
            provisioning.ProvisioningError, match=f"{calls[fail_at].operation} failed: TooManyRequestsException"
        ):
            provisioning.sync_api(record, client=client)
        client.stubber.assert_no_pending_responses()
        return None, before
    plan = provisioning.sync_api(record, client=client)
    client.stubber.assert_no_pending_responses()
    return plan, end


def assert_converged(record, state):
    """One integration per route, no orphan, the two-way response, the stage deployed."""
    record.refresh_from_db()
    wanted = {key: (uri, record.integration_secret) for key, uri, _ in desired(record)}
    assert {key: state.integrations[route[1]] for key, route in state.routes.items()} == wanted
    assert set(state.integrations) == {route[1] for route in state.routes.values()}
    assert state.responses == {state.routes[key][0] for key, _, two_way in desired(record) if two_way}
    assert state.stage and state.deployments >= 1
    assert record.api_created and record.deployment_id == f"dep{state.deployments}"
    assert record.api_id == API and record.api_endpoint == ENDPOINT
    assert not record.additional_routes.filter(deployed=False).exists()


def test_creates_api_integrations_routes_stage_and_deployment(record, client):
    plan, state = run(record, client, AwsState())
    assert_converged(record, state)
    assert plan.steps == [
        "create WEBSOCKET API 'chat'",
        f"create integration POST {BASE}connect for route $connect",
        "create route $connect",
        f"create integration POST {BASE}disconnect for route $disconnect",
        "create route $disconnect",
        f"create integration POST {BASE}default for route $default",
        "create route $default",
        f"create integration POST {CHAT_URL} for route chat",
        "create route chat (two-way)",
        "create stage 'production'",
        "deploy stage 'production'",
    ]


CREATION_CALLS = 15  # create_api, 2 reads, 4 x (integration, route), 1 route response, get/create stage, deploy


def test_creation_makes_the_expected_number_of_calls(record):
    assert len(expected_sync(record, AwsState())) == CREATION_CALLS


@pytest.mark.parametrize("fail_at", range(CREATION_CALLS))
def test_creation_failing_at_any_call_converges_when_run_again(record, client, fail_at):
    operations = [c.operation for c in expected_sync(record, AwsState())]
    _, state = run(record, client, AwsState(), fail_at=fail_at)
    record.refresh_from_db()
    # Flags stay down after a failure; the api id is kept as soon as AWS returned it.
    assert record.api_created is False and record.additional_routes.get().deployed is False
    assert record.api_id == (API if fail_at > 0 else "")
    # The claim is given back when no API was recorded; otherwise each step is recorded.
    expected = (
        "pending" if fail_at == 0 else "routes_created" if fail_at >= operations.index("get_stage") else "api_created"
    )
    assert record.provisioning_status == expected
    assert "TooManyRequestsException: Too Many Requests" in record.last_error
    plan, state = run(record, client, state)
    assert plan.changed
    assert_converged(record, state)
    assert (record.provisioning_status, record.last_error) == ("deployed", "")
    plan, state = run(record, client, state)
    assert not plan.changed and str(plan) == "Nothing to change."


def deployed(record, client):
    _, state = run(record, client, AwsState())
    record.refresh_from_db()
    return state


def change_target_secret_and_routes(record):
    """A record that moved to a new host, rotated its secret and gained a two-way route."""
    record.target_base_endpoint = "https://new.example.com/ws/"
    record.integration_secret = "N" * 43
    record.save()
    ApiGatewayAdditionalRoute.objects.create(
        api_gateway=record, name="Typing", route_key="typing", integration_url="https://new.example.com/ws/typing"
    )


def test_sync_applies_target_secret_and_new_route_then_deploys(record, client):
    state = deployed(record, client)
    change_target_secret_and_routes(record)
    plan, state = run(record, client, state)
    assert plan.steps == [
        "update integration of route $connect (POST https://new.example.com/ws/connect, mapped headers)",
        "update integration of route $disconnect (POST https://new.example.com/ws/disconnect, mapped headers)",
        "update integration of route $default (POST https://new.example.com/ws/default, mapped headers)",
        "update integration of route chat (POST https://www.example.com/ws/chat, mapped headers)",
        "create integration POST https://new.example.com/ws/typing for route typing",
        "create route typing",
        "deploy stage 'production'",
    ]
    assert state.deployments == 2
    assert record.additional_routes.filter(deployed=True).count() == 2


SYNC_CALLS = 15  # get_api, get_routes, get_integrations, 4 x (update, route responses), 2 for typing, stage, deploy


def test_sync_makes_the_expected_number_of_calls(record, client):
    state = deployed(record, client)
    change_target_secret_and_routes(record)
    assert len(expected_sync(record, state)) == SYNC_CALLS


@pytest.mark.parametrize("fail_at", range(SYNC_CALLS))
def test_sync_failing_at_any_call_converges_and_still_deploys(record, client, fail_at):
    """A failed update, even one failing only at the deployment, is deployed by the re-run."""
    state = deployed(record, client)
    change_target_secret_and_routes(record)
    _, state = run(record, client, state, fail_at=fail_at)
    plan, state = run(record, client, state)
    assert plan.changed and state.deployments == 2
    assert_converged(record, state)
    plan, state = run(record, client, state)
    assert not plan.changed


def test_in_sync_api_changes_nothing_and_says_what_it_checked(record, client):
    state = deployed(record, client)
    plan, _ = run(record, client, state)
    assert not plan.changed
    assert f"API {API} 'chat'" in plan.unchanged
    assert "route chat (two-way)" in plan.unchanged
    assert "deployment dep1 of stage 'production'" in plan.unchanged


def test_dry_run_lists_the_changes_and_writes_nothing(record, client):
    state = deployed(record, client)
    change_target_secret_and_routes(record)
    record.refresh_from_db()
    reads = [c for c in expected_sync(record, state) if c.operation.startswith("get_")]
    queue(client.stubber, reads)  # a dry run makes only the reads
    plan = provisioning.sync_api(record, client=client, dry_run=True)
    assert plan.dry_run and plan.steps[0].startswith("update integration of route $connect")
    assert "create route typing" in plan.steps and plan.steps[-1] == "deploy stage 'production'"
    record.refresh_from_db()
    assert record.deployment_id == "dep1"
    assert record.additional_routes.get(route_key="typing").deployed is False


def test_dry_run_of_a_new_api_calls_aws_not_at_all(record, client):
    plan = provisioning.sync_api(record, client=client, dry_run=True)
    assert plan.steps[0] == "create WEBSOCKET API 'chat'" and plan.steps[-1] == "deploy stage 'production'"
    record.refresh_from_db()
    assert record.api_id == ""


def test_route_only_in_aws_is_kept_and_reported(record, client):
    """A route the record does not have (removed from it, or made outside Django) stays."""
    state = deployed(record, client)
    record.additional_routes.all().delete()
    rid, iid, _ = state.routes["chat"]
    queue(client.stubber, expected_sync(record, state))  # reads only: nothing to change
    plan = provisioning.sync_api(record, client=client)
    assert plan.steps == [] and "route chat (only in AWS)" in plan.unchanged
    assert plan.drift == [
        (
            "only in AWS",
            f"route chat -> HTTP_PROXY {CHAT_URL} (two-way) [route {rid}, integration {iid}]: "
            "kept (--import-aws-routes adds it to the record, --delete-aws-only-routes deletes it)",
        )
    ]


def test_route_only_in_aws_is_deleted_with_its_integration_when_asked(record, client):
    state = deployed(record, client)
    record.additional_routes.all().delete()
    stub = client.stubber
    rid, iid, _ = state.routes["chat"]
    calls = expected_sync(record, state)
    # The spec ignores routes the record no longer has; the sync deletes them after the others.
    reads = [c for c in calls if c.operation != "create_deployment" and c.operation != "get_stage"]
    queue(stub, reads)
    stub.add_response("delete_route", {}, {"ApiId": API, "RouteId": rid})
    stub.add_response("delete_integration", {}, {"ApiId": API, "IntegrationId": iid})
    stub.add_response(
        "get_stage",
        {"StageName": "production", "Description": "live", "DeploymentId": "dep1"},
        {"ApiId": API, "StageName": "production"},
    )
    stub.add_response(
        "create_deployment", {"DeploymentId": "dep2"}, {"ApiId": API, "StageName": "production", "Description": "live"}
    )
    plan = provisioning.sync_api(record, client=client, aws_only_routes="delete")
    assert plan.steps == ["delete route chat (only in AWS)", "deploy stage 'production'"]
    assert plan.drift[0][0] == "only in AWS" and plan.drift[0][1].endswith(": deleted (--delete-aws-only-routes)")


def test_one_way_route_loses_its_route_response(record, client):
    state = deployed(record, client)
    record.additional_routes.update(two_way=False)
    rid = state.routes["chat"][0]
    stub = client.stubber
    for call in expected_sync(record, state):
        stub.add_response(call.operation, call.response, call.params)
        if call.operation == "get_route_responses" and call.params["RouteId"] == rid:
            stub.add_response(
                "delete_route_response", {}, {"ApiId": API, "RouteId": rid, "RouteResponseId": f"rr-{rid}"}
            )
    stub.add_response(
        "create_deployment", {"DeploymentId": "dep2"}, {"ApiId": API, "StageName": "production", "Description": "live"}
    )
    plan = provisioning.sync_api(record, client=client)
    assert plan.steps == ["delete route response of chat (one-way)", "deploy stage 'production'"]


def test_stage_throttling_and_access_logs_are_applied(record, client):
    state = deployed(record, client)
    record.throttling_burst_limit, record.throttling_rate_limit = 100, 50.0
    record.access_log_destination_arn = "arn:aws:logs:eu-west-1:123456789012:log-group:ws"
    record.save()
    settings = {
        "DefaultRouteSettings": {"ThrottlingBurstLimit": 100, "ThrottlingRateLimit": 50.0},
        "AccessLogSettings": {
            "DestinationArn": record.access_log_destination_arn,
            "Format": provisioning.DEFAULT_ACCESS_LOG_FORMAT,
        },
    }
    stub = client.stubber
    queue(stub, expected_sync(record, state))  # ends with get_stage (the record is deployed)
    stub.add_response("update_stage", {}, {"ApiId": API, "StageName": "production", "Description": "live", **settings})
    stub.add_response(
        "create_deployment", {"DeploymentId": "dep2"}, {"ApiId": API, "StageName": "production", "Description": "live"}
    )
    plan = provisioning.sync_api(record, client=client)
    assert plan.steps == [
        "update stage 'production' (description, throttling, access logs)",
        "deploy stage 'production'",
    ]


def test_new_tags_are_added_to_the_existing_api(record, client):
    state = deployed(record, client)
    record.tags = {"team": "web", "env": "prod"}
    record.save()
    calls = expected_sync(record, state)
    calls[0].response["Tags"] = {"team": "web", provisioning.RECORD_TAG: record_tag_value(record)}
    stub = client.stubber
    queue(stub, calls[:1])  # get_api: AWS has {"team": "web"} and the record tag
    stub.add_response(
        "tag_resource", {}, {"ResourceArn": f"arn:aws:apigateway:eu-west-1::/apis/{API}", "Tags": {"env": "prod"}}
    )
    queue(stub, calls[1:])
    stub.add_response(
        "create_deployment", {"DeploymentId": "dep2"}, {"ApiId": API, "StageName": "production", "Description": "live"}
    )
    assert provisioning.sync_api(record, client=client).steps == ["tag API: env", "deploy stage 'production'"]


def test_rotate_secret_saves_both_secrets_then_puts_the_new_one_on_every_integration(record, client, monkeypatch):
    state = deployed(record, client)
    old = record.integration_secret
    monkeypatch.setattr("django_aws_api_gateway_websockets.models.generate_integration_secret", lambda: "N" * 43)
    rotated = ApiGateway.objects.get(pk=record.pk)
    rotated.integration_secret = "N" * 43
    calls = expected_sync(rotated, state)
    assert [c.operation for c in calls].count("update_integration") == 4
    queue(client.stubber, calls)
    seen_by_other_processes = []
    real_sync = provisioning.api.sync_api

    def sync_api(record, **kwargs):
        # While AWS is updated, the row already accepts both secrets (no refused request).
        row = ApiGateway.objects.get(pk=record.pk)
        seen_by_other_processes.append(security.secret_matches(row, old) and security.secret_matches(row, "N" * 43))
        return real_sync(record, **kwargs)

    monkeypatch.setattr(provisioning.api, "sync_api", sync_api)
    plan = provisioning.rotate_secret(record, client=client)
    assert seen_by_other_processes == [True]
    assert plan.steps[-1] == "keep the previous secret valid for the grace period"
    record.refresh_from_db()
    assert record.integration_secret == "N" * 43 != old and record.deployment_id == "dep2"
    assert record.previous_integration_secret == old and record.secret_rotated_at is not None


def test_failed_rotation_keeps_the_old_secret_and_a_plain_sync_restores_it(record, client, monkeypatch):
    state = deployed(record, client)
    old = record.integration_secret
    monkeypatch.setattr("django_aws_api_gateway_websockets.models.generate_integration_secret", lambda: "N" * 43)
    rotated = ApiGateway.objects.get(pk=record.pk)
    rotated.integration_secret = "N" * 43
    calls = expected_sync(rotated, state)
    fail_at = [c.operation for c in calls].index("update_integration") + 2  # one integration updated
    queue(client.stubber, calls, fail_at=fail_at)
    with pytest.raises(provisioning.ProvisioningError):
        provisioning.rotate_secret(record, client=client)
    restored = ApiGateway.objects.get(pk=record.pk)
    assert (restored.integration_secret, restored.previous_integration_secret, restored.secret_rotated_at) == (
        old,
        "",
        None,
    )
    _, state = run(record, client, calls[fail_at - 1].after)
    assert_converged(record, state)


def test_a_record_without_target_fails_before_any_aws_call(record, client):
    record.target_base_endpoint = None
    record.save()
    with pytest.raises(provisioning.ProvisioningError, match="set target_base_endpoint"):
        provisioning.sync_api(record, client=client)


def test_unreachable_aws_is_a_provisioning_error(record):
    unreachable = aws.get_client("apigatewayv2", region="eu-west-1", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(provisioning.ProvisioningError, match="create_api failed: EndpointConnectionError"):
        provisioning.sync_api(record, client=unreachable)
    record.refresh_from_db()
    assert record.api_id == "" and record.api_created is False
    assert record.provisioning_status == "pending" and "EndpointConnectionError" in record.last_error


def test_integration_left_by_a_failed_run_is_deleted_when_no_longer_wanted(record, client):
    _, state = run(record, client, AwsState(), fail_at=4)  # $connect's integration made, its route not
    assert list(state.integrations.values()) == [(BASE + "connect", record.integration_secret)]
    record.target_base_endpoint = "https://new.example.com/ws/"
    record.save()
    plan, state = run(record, client, state)
    assert plan.steps[-3] == f"delete unused integration i1 (POST {BASE}connect)"
    assert_converged(record, state)
