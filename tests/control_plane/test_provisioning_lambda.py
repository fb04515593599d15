"""Provisioning a record with the Lambda proxy integration (issue #27): every route gets an
``AWS_PROXY`` integration invoking ``lambda_function_arn``, the function's policy lets API Gateway
invoke it for this API (``lambda:AddPermission``), and the rest (stage throttling, two-way
routes, drift, idempotence) is as for HTTP records. Against moto (a stateful AWS) and
botocore's Stubber."""

import json

import pytest
from botocore.stub import Stubber

from django_aws_api_gateway_websockets import aws, provisioning
from django_aws_api_gateway_websockets.models import ApiGateway, ApiGatewayAdditionalRoute, IntegrationType
from django_aws_api_gateway_websockets.provisioning import ProvisioningError
from django_aws_api_gateway_websockets.provisioning.base import Plan
from django_aws_api_gateway_websockets.provisioning.lambda_permission import (
    grant_invoke,
    invocation_uri,
    source_arn,
)

from .test_provisioning_state import moto_apigw  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db

ACCOUNT = "123456789012"
FUNCTION = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:chat"
URI = f"arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/{FUNCTION}/invocations"


@pytest.fixture
def lambda_record():
    record = ApiGateway.objects.create(
        api_name="chat",
        region="eu-west-1",
        stage_name="production",
        integration_type=IntegrationType.AWS_PROXY,
        lambda_function_arn=FUNCTION,
        default_route_two_way=True,
        throttling_burst_limit=50,
        throttling_rate_limit=25.0,
    )
    ApiGatewayAdditionalRoute.objects.create(
        api_gateway=record, name="Ask", route_key="ask", integration_url="https://www.example.com/ws/ask", two_way=True
    )
    return record


@pytest.fixture
def moto_lambda(moto_apigw):  # noqa: F811
    """moto's Lambda with the record's function (its role from moto's IAM)."""
    import io
    import zipfile

    iam = aws.get_client("iam", region="eu-west-1")
    role = iam.create_role(
        RoleName="chat-fn",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("main.py", "def handler(event, context):\n    return {'statusCode': 200}\n")
    client = aws.get_client("lambda", region="eu-west-1")
    client.create_function(
        FunctionName="chat", Runtime="python3.12", Role=role, Handler="main.handler", Code={"ZipFile": code.getvalue()}
    )
    return client


def statements(client):
    return json.loads(client.get_policy(FunctionName=FUNCTION)["Policy"])["Statement"]


def test_every_route_invokes_the_function_and_api_gateway_may_invoke_it(lambda_record, moto_apigw, moto_lambda):  # noqa: F811
    plan = provisioning.sync_api(lambda_record, client=moto_apigw, lambda_client=moto_lambda)
    lambda_record.refresh_from_db()
    api_id = lambda_record.api_id
    assert lambda_record.provisioning_status == "deployed"
    integrations = moto_apigw.get_integrations(ApiId=api_id)["Items"]
    assert {(i["IntegrationType"], i["IntegrationUri"]) for i in integrations} == {("AWS_PROXY", URI)}
    assert all("RequestParameters" not in i or not i["RequestParameters"] for i in integrations)
    routes = {r["RouteKey"]: r for r in moto_apigw.get_routes(ApiId=api_id)["Items"]}
    assert set(routes) == {"$connect", "$disconnect", "$default", "ask"}
    targets = {r["Target"].removeprefix("integrations/") for r in routes.values()}
    assert targets <= {i["IntegrationId"] for i in integrations}
    assert routes["ask"]["RouteResponseSelectionExpression"] == "$default"  # two-way
    (statement,) = statements(moto_lambda)
    assert statement["Sid"] == f"apigateway-websockets-{api_id}"
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:{api_id}/*"
    assert any(step.startswith("add permission for API Gateway to invoke") for step in plan.steps)
    stage = moto_apigw.get_stage(ApiId=api_id, StageName="production")
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 50


def test_a_second_sync_changes_nothing_and_grants_once(lambda_record, moto_apigw, moto_lambda):  # noqa: F811
    provisioning.sync_api(lambda_record, client=moto_apigw, lambda_client=moto_lambda)
    lambda_record.refresh_from_db()
    again = provisioning.sync_api(lambda_record, client=moto_apigw, lambda_client=moto_lambda)
    # No drift; it deploys again only because moto's stage never records a deployment.
    assert again.steps == ["deploy stage 'production'"] and not again.drift
    assert len(statements(moto_lambda)) == 1


def test_an_http_record_switched_to_lambda_gets_new_integrations(lambda_record, moto_apigw, moto_lambda):  # noqa: F811
    ApiGateway.objects.filter(pk=lambda_record.pk).update(
        integration_type=IntegrationType.HTTP, target_base_endpoint="https://www.example.com/ws/"
    )
    lambda_record.refresh_from_db()
    provisioning.sync_api(lambda_record, client=moto_apigw)
    lambda_record.refresh_from_db()
    ApiGateway.objects.filter(pk=lambda_record.pk).update(integration_type=IntegrationType.AWS_PROXY)
    lambda_record.refresh_from_db()
    plan = provisioning.sync_api(lambda_record, client=moto_apigw, lambda_client=moto_lambda)
    assert any("HTTP_PROXY in AWS, AWS_PROXY in the record" in text for _kind, text in plan.drift)
    integrations = moto_apigw.get_integrations(ApiId=lambda_record.api_id)["Items"]
    assert {i["IntegrationType"] for i in integrations} == {"AWS_PROXY"}  # the HTTP ones deleted
    routes = moto_apigw.get_routes(ApiId=lambda_record.api_id)["Items"]
    assert {r["Target"].removeprefix("integrations/") for r in routes} == {i["IntegrationId"] for i in integrations}


def test_a_dry_run_changes_nothing(lambda_record, moto_apigw, moto_lambda):  # noqa: F811
    plan = provisioning.sync_api(lambda_record, client=moto_apigw, lambda_client=moto_lambda, dry_run=True)
    assert any("lambda:AddPermission" in step for step in plan.steps)
    assert moto_apigw.get_apis()["Items"] == []


@pytest.mark.parametrize("arn", ["", "chat", "arn:aws:lambda:eu-west-1:123:function:chat", "arn:aws:s3:::bucket"])
def test_a_record_without_a_function_arn_fails_before_any_aws_call(lambda_record, arn):
    ApiGateway.objects.filter(pk=lambda_record.pk).update(lambda_function_arn=arn)
    lambda_record.refresh_from_db()
    with pytest.raises(ProvisioningError, match="lambda_function_arn"):
        provisioning.sync_api(lambda_record, client=object(), lambda_client=object())


def test_invocation_uri_and_source_arn_of_an_alias():
    alias = FUNCTION + ":live"
    assert invocation_uri(alias).endswith(f"/functions/{alias}/invocations")
    assert source_arn(alias, "eu-west-1", "abc") == f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:abc/*"


# --- the grant against the Stubber: its exact calls --------------------------------------


@pytest.fixture
def stubbed_lambda():
    aws.clear_clients()
    client = aws.get_client("lambda", region="eu-west-1")
    with Stubber(client) as stubber:
        client.stubber = stubber
        yield client
        stubber.assert_no_pending_responses()
    aws.clear_clients()


def policy(source):
    statement = {
        "Sid": "apigateway-websockets-abc",
        "Effect": "Allow",
        "Principal": {"Service": "apigateway.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": FUNCTION,
        "Condition": {"ArnLike": {"AWS:SourceArn": source}},
    }
    return {"Policy": json.dumps({"Version": "2012-10-17", "Statement": [statement]}), "RevisionId": "r1"}


ADD = {
    "FunctionName": FUNCTION,
    "StatementId": "apigateway-websockets-abc",
    "Action": "lambda:InvokeFunction",
    "Principal": "apigateway.amazonaws.com",
    "SourceArn": f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:abc/*",
}


def test_grant_adds_the_statement_to_a_function_without_a_policy(lambda_record, stubbed_lambda):
    stubbed_lambda.stubber.add_client_error(
        "get_policy", "ResourceNotFoundException", expected_params={"FunctionName": FUNCTION}
    )
    stubbed_lambda.stubber.add_response("add_permission", {"Statement": "{}"}, ADD)
    plan = Plan()
    grant_invoke(lambda_record, "abc", plan, stubbed_lambda)
    assert plan.steps == [f"add permission for API Gateway to invoke {FUNCTION} from API abc (lambda:AddPermission)"]


def test_grant_keeps_a_right_statement(lambda_record, stubbed_lambda):
    stubbed_lambda.stubber.add_response("get_policy", policy(ADD["SourceArn"]), {"FunctionName": FUNCTION})
    plan = Plan()
    grant_invoke(lambda_record, "abc", plan, stubbed_lambda)
    assert plan.steps == [] and plan.unchanged


def test_grant_replaces_a_statement_naming_another_source(lambda_record, stubbed_lambda):
    stubbed_lambda.stubber.add_response(
        "get_policy", policy("arn:aws:execute-api:eu-west-1:1:old/*"), {"FunctionName": FUNCTION}
    )
    stubbed_lambda.stubber.add_response(
        "remove_permission", {}, {"FunctionName": FUNCTION, "StatementId": "apigateway-websockets-abc"}
    )
    stubbed_lambda.stubber.add_response("add_permission", {"Statement": "{}"}, ADD)
    plan = Plan()
    grant_invoke(lambda_record, "abc", plan, stubbed_lambda)
    assert plan.drift and plan.steps[0].startswith("replace permission")


def test_grant_failure_is_a_provisioning_error(lambda_record, stubbed_lambda):
    stubbed_lambda.stubber.add_client_error(
        "get_policy", "AccessDeniedException", expected_params={"FunctionName": FUNCTION}
    )
    with pytest.raises(ProvisioningError, match="get_policy failed: AccessDeniedException"):
        grant_invoke(lambda_record, "abc", Plan(), stubbed_lambda)


def test_deploy_policy_lets_the_deployer_grant_the_function_and_nothing_more(lambda_record):
    from django_aws_api_gateway_websockets.provisioning.iam import iam_policy

    statements = {s["Sid"]: s for s in iam_policy(lambda_record, "deploy")["Statement"]}
    grant = statements["LetApiGatewayInvokeTheFunction"]
    assert (grant["Resource"], sorted(grant["Action"])) == (
        FUNCTION,
        ["lambda:AddPermission", "lambda:GetPolicy", "lambda:RemovePermission"],
    )
    ApiGateway.objects.filter(pk=lambda_record.pk).update(integration_type=IntegrationType.HTTP)
    lambda_record.refresh_from_db()
    assert "LetApiGatewayInvokeTheFunction" not in {s["Sid"] for s in iam_policy(lambda_record, "deploy")["Statement"]}


def test_grant_keeps_another_tools_statement_for_this_api(lambda_record, stubbed_lambda):
    # e.g. the exported template's AWS::Lambda::Permission (its own statement id)
    answer = policy(ADD["SourceArn"])
    document = json.loads(answer["Policy"])
    document["Statement"][0]["Sid"] = "chat-stack-Permission-1ABC"
    stubbed_lambda.stubber.add_response(
        "get_policy", {**answer, "Policy": json.dumps(document)}, {"FunctionName": FUNCTION}
    )
    plan = Plan()
    grant_invoke(lambda_record, "abc", plan, stubbed_lambda)
    assert plan.steps == [] and "chat-stack-Permission-1ABC" in plan.unchanged[0]


def test_an_exported_lambda_stack_adopted_then_synced_changes_nothing(moto_apigw, moto_lambda, tmp_path):  # noqa: F811
    """Export (#28) -> the stack -> adopt -> sync: the template's one integration and its
    permission are what sync wants (no new integration, no second grant)."""
    from .test_template_round_trip import deploy, export

    record = ApiGateway.objects.create(
        api_name="chat", region="eu-west-1", integration_type=IntegrationType.AWS_PROXY, lambda_function_arn=FUNCTION
    )
    deploy(export(record, tmp_path, template_format="sam"), {})
    [api] = moto_apigw.get_apis()["Items"]
    record.delete()
    adopted = ApiGateway.objects.create(
        api_name="chat", region="eu-west-1", integration_type=IntegrationType.AWS_PROXY, lambda_function_arn=FUNCTION
    )
    plan = provisioning.sync_api(
        adopted, client=moto_apigw, lambda_client=moto_lambda, adopt=api["ApiId"], dry_run=True
    )
    assert not [step for step in plan.steps if "integration" in step or "permission" in step], plan.steps
