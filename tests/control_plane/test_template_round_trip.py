"""Export -> deploy into moto's CloudFormation -> adopt -> ``sync_api_gateway --dry-run``
reports no drift (issue #28).

moto (5.2) runs CloudFormation stacks (parameters, ``Ref``, ``Fn::GetAtt``, ``Fn::Sub``,
``Fn::Join``, ``DependsOn``) and creates the resource types it has handlers for: here the
Route 53 record set, the IAM managed policy and the Lambda permission. It has none for
``AWS::ApiGatewayV2::*``, so this module registers them: each handler passes the resource's
properties, as moto's CloudFormation resolved them, to the apigatewayv2 API call of the same
name (CloudFormation's ApiGatewayV2 properties are that API's parameters), against moto's
stateful apigatewayv2. What moto's apigatewayv2 does not implement (deployments, route
responses, a custom domain's target name) is answered by the client hooks of
``moto_aws``, as ``test_provisioning_state.moto_apigw`` does.
"""

import hashlib
import io
import json
import zipfile
from io import StringIO

import boto3
import moto.settings
import pytest
from botocore.awsrequest import AWSResponse
from django.core.management import call_command
from django.core.management.base import CommandError
from moto import mock_aws
from moto.cloudformation import parsing
from moto.core.common_models import CloudFormationModel

from django_aws_api_gateway_websockets import aws, provisioning
from django_aws_api_gateway_websockets.models import ApiGateway
from django_aws_api_gateway_websockets.provisioning import RECORD_TAG

pytestmark = pytest.mark.django_db

REGION = "eu-west-1"
BASE = "https://www.example.com/ws/"
DOMAIN = "ws.example.com"
APIGW_ZONE = "ZLY8HYME6SFDD"  # API Gateway's regional hosted zone in eu-west-1


def _client():
    return aws.get_client("apigatewayv2", region=REGION)


class _Handler:
    """One ApiGatewayV2 resource type: create it with the API call of the same name."""

    CREATE = ""
    ID = ""  # the answer's field ``Ref`` returns
    ATTRIBUTES: dict[str, str] = {}  # Fn::GetAtt name -> the answer's field

    def __init__(self, answer):
        self.answer = answer
        self.physical_resource_id = answer[self.ID]

    @staticmethod
    def cloudformation_name_type():
        return ""

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr in cls.ATTRIBUTES

    def get_cfn_attribute(self, name):
        return self.answer[self.ATTRIBUTES[name]]

    def is_created(self):
        return True

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        return cls(getattr(_client(), cls.CREATE)(**cloudformation_json["Properties"]))


class _Api(_Handler, CloudFormationModel):
    CREATE, ID, ATTRIBUTES = "create_api", "ApiId", {"ApiEndpoint": "ApiEndpoint", "ApiId": "ApiId"}

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGatewayV2::Api"


class _Integration(_Handler, CloudFormationModel):
    CREATE, ID = "create_integration", "IntegrationId"

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGatewayV2::Integration"


class _Route(_Handler, CloudFormationModel):
    CREATE, ID = "create_route", "RouteId"

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGatewayV2::Route"


class _RouteResponse(_Handler, CloudFormationModel):
    CREATE, ID = "create_route_response", "RouteResponseId"

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGatewayV2::RouteResponse"


class _Deployment(_Handler, CloudFormationModel):
    CREATE, ID = "create_deployment", "DeploymentId"

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGatewayV2::Deployment"


class _Stage(_Handler, CloudFormationModel):
    CREATE, ID = "create_stage", "StageName"

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGatewayV2::Stage"


class _DomainName(_Handler, CloudFormationModel):
    CREATE, ID = "create_domain_name", "DomainName"

    def get_cfn_attribute(self, name):
        config = self.answer["DomainNameConfigurations"][0]
        return {"RegionalDomainName": config["ApiGatewayDomainName"], "RegionalHostedZoneId": config["HostedZoneId"]}[
            name
        ]

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr in ("RegionalDomainName", "RegionalHostedZoneId")

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGatewayV2::DomainName"


class _ApiMapping(_Handler, CloudFormationModel):
    CREATE, ID = "create_api_mapping", "ApiMappingId"

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGatewayV2::ApiMapping"


def _answer(status, body):
    return AWSResponse("https://moto", status, {}, None), body


@pytest.fixture
def moto_aws(monkeypatch):
    """moto with the ApiGatewayV2 CloudFormation handlers above, and the apigatewayv2 calls
    moto lacks answered on the (cached) client every caller uses."""
    monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", -1)  # certificates are issued at once
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()  # the handlers defined above join moto's list
    aws.clear_clients()
    deployments, responses = [], set()

    def route_id(params):
        return params["url_path"].split("/routes/")[1].split("/")[0]

    def create_deployment(params, **kwargs):
        deployments.append(params["url_path"])
        return _answer(201, {"DeploymentId": f"dep{len(deployments)}"})

    def create_route_response(params, **kwargs):
        responses.add(route_id(params))
        return _answer(201, {"RouteResponseId": f"rr-{route_id(params)}", "RouteResponseKey": "$default"})

    def get_route_responses(params, **kwargs):
        found = route_id(params) in responses
        return _answer(200, {"Items": [{"RouteResponseKey": "$default", "RouteResponseId": "rr"}] if found else []})

    def domain_target(parsed, **kwargs):
        # AWS names a regional domain's target d-<id>.execute-api.<region>.amazonaws.com.
        for domain in parsed.get("Items", [parsed]):
            for config in domain.get("DomainNameConfigurations", []):
                digest = hashlib.sha256(domain["DomainName"].encode()).hexdigest()[:10]
                config.setdefault("ApiGatewayDomainName", f"d-{digest}.execute-api.{REGION}.amazonaws.com")
                config.setdefault("HostedZoneId", APIGW_ZONE)

    with mock_aws():
        client = _client()
        client.meta.events.register("before-call.apigatewayv2.CreateDeployment", create_deployment)
        client.meta.events.register("before-call.apigatewayv2.CreateRouteResponse", create_route_response)
        client.meta.events.register("before-call.apigatewayv2.GetRouteResponses", get_route_responses)
        for operation in ("CreateDomainName", "GetDomainName", "GetDomainNames"):
            client.meta.events.register(f"after-call.apigatewayv2.{operation}", domain_target)
        yield client
    aws.clear_clients()
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()


def deploy(template_text, parameters):
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(
        StackName="chat-websocket",
        TemplateBody=template_text,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    stack = cloudformation.describe_stacks(StackName="chat-websocket")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def export(record, tmp_path, name="template.json", **options):
    path = tmp_path / name
    call_command("export_api_gateway", pk=record.pk, output=str(path), stderr=StringIO(), **options)
    return path.read_text()


def snapshot(record):
    fields = [
        "api_name",
        "api_description",
        "route_selection_expression",
        "api_key_selection_expression",
        "target_base_endpoint",
        "integration_secret",
        "integration_type",
        "lambda_function_arn",
        "stage_name",
        "stage_description",
        "throttling_burst_limit",
        "throttling_rate_limit",
        "default_route_two_way",
        "domain_name",
        "certificate_arn",
        "hosted_zone_id",
        "tags",
    ]
    routes = sorted(record.additional_routes.values_list("route_key", "integration_url", "two_way"))
    return {name: getattr(record, name) for name in fields}, routes


@pytest.fixture
def full_record():
    """Every part the template can say: additional routes (one two-way), a two-way
    $default, throttling, tags, a custom domain with a certificate and a Route 53 zone."""
    zone = boto3.client("route53", region_name=REGION).create_hosted_zone(Name="example.com", CallerReference="r1")
    certificate = boto3.client("acm", region_name=REGION).request_certificate(
        DomainName=DOMAIN, ValidationMethod="DNS"
    )["CertificateArn"]
    record = ApiGateway.objects.create(
        api_name="chat",
        api_description="the chat",
        target_base_endpoint=BASE,
        region=REGION,
        stage_name="live",
        stage_description="v1",
        throttling_burst_limit=50,
        throttling_rate_limit=12.5,
        default_route_two_way=True,
        tags={"team": "web"},
        domain_name=DOMAIN,
        certificate_arn=certificate,
        hosted_zone_id=zone["HostedZone"]["Id"].split("/")[-1],
    )
    record.additional_routes.create(name="send", route_key="chat.send", integration_url=BASE + "send", two_way=True)
    record.additional_routes.create(name="typing", route_key="typing", integration_url="https://other.example.com/t")
    return record


@pytest.mark.parametrize("name", ["template.json", "template.yaml"])
def test_an_exported_stack_adopted_into_a_new_record_has_no_drift(moto_aws, full_record, tmp_path, name):
    text = export(full_record, tmp_path, name, template_format="sam")
    assert full_record.integration_secret not in text
    wanted = snapshot(full_record)
    outputs = deploy(text, {"IntegrationSecret": full_record.integration_secret})

    # What the stack created is what create_api_gateway would have: the API, the routes
    # with their integrations (the secret resolved from the NoEcho parameter), the stage.
    [api] = moto_aws.get_apis()["Items"]
    assert outputs["ApiId"] == api["ApiId"] and outputs["WebSocketUrl"] == f"wss://{DOMAIN}"
    routes = {r["RouteKey"]: r for r in moto_aws.get_routes(ApiId=api["ApiId"])["Items"]}
    assert sorted(routes) == ["$connect", "$default", "$disconnect", "chat.send", "typing"]
    integrations = {i["IntegrationId"]: i for i in moto_aws.get_integrations(ApiId=api["ApiId"])["Items"]}
    connect = integrations[routes["$connect"]["Target"].removeprefix("integrations/")]
    assert connect["IntegrationUri"] == BASE + "connect"
    assert connect["RequestParameters"] == {
        "integration.request.header.connectionId": "context.connectionId",
        "integration.request.header.X-Source-Ip": "context.identity.sourceIp",
        "integration.request.header.X-Gateway-Secret": f"'{full_record.integration_secret}'",
    }
    stage = moto_aws.get_stage(ApiId=api["ApiId"], StageName="live")
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 50
    policy_arn = outputs["RuntimePolicyArn"]
    iam = boto3.client("iam", region_name=REGION)
    version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"]["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    assert document["Statement"][0]["Resource"] == (
        f"arn:aws:execute-api:{REGION}:123456789012:{api['ApiId']}/live/*/@connections/*"
    )

    # The template is in the repository, the record in another database: adopt fills a new one.
    full_record.delete()
    out = StringIO()
    call_command("adopt_api_gateway", api_id=api["ApiId"], region=REGION, stdout=out)
    record = ApiGateway.objects.get(api_id=api["ApiId"])
    assert snapshot(record)[1] == wanted[1]
    assert snapshot(record)[0] == wanted[0]
    assert (record.provisioning_status, record.custom_domain_created, record.api_mapping_id) == (
        "mapped",
        True,
        moto_aws.get_api_mappings(DomainName=DOMAIN)["Items"][0]["ApiMappingId"],
    )
    assert record.websocket_url == f"wss://{DOMAIN}"

    out = StringIO()
    call_command("sync_api_gateway", pk=record.pk, dry_run=True, stdout=out)
    assert "No drift: AWS matches the record." in out.getvalue()
    # What a real sync would still do: tag the API for this database's record (the stack's
    # tag names the record it was exported from), and deploy, as moto's stages never
    # record a deployment.
    steps = [line for line in out.getvalue().splitlines() if line.startswith("  would ")]
    assert steps == [f"  would tag API: {RECORD_TAG}", "  would deploy stage 'live'"]
    out = StringIO()
    call_command("create_custom_domain", pk=record.pk, dry_run=True, stdout=out)
    assert "nothing to change" in out.getvalue()


def test_a_changed_template_is_reported_as_drift_against_the_adopted_record(moto_aws, full_record, tmp_path):
    """Template and record in step is checked, not assumed: a stack whose template says
    another URL and throttling than the record is drift."""
    text = export(full_record, tmp_path)
    changed = json.loads(text)
    changed["Resources"]["IntegrationConnect"]["Properties"]["IntegrationUri"] = "https://old.example.com/ws/connect"
    changed["Resources"]["Stage"]["Properties"]["DefaultRouteSettings"]["ThrottlingBurstLimit"] = 7
    deploy(json.dumps(changed), {"IntegrationSecret": full_record.integration_secret})
    [api] = moto_aws.get_apis()["Items"]
    ApiGateway.objects.filter(pk=full_record.pk).update(api_id=api["ApiId"], api_created=True)
    out = StringIO()
    call_command("sync_api_gateway", pk=full_record.pk, dry_run=True, stdout=out)
    report = out.getvalue()
    assert (
        "IntegrationUri 'https://old.example.com/ws/connect' in AWS, 'https://www.example.com/ws/connect' in the record"
        in report
    )
    assert "ThrottlingBurstLimit 7 in AWS, 50 in the record" in report


def _lambda_function():
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="chat-lambda", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {'statusCode': 200}\n")
    return boto3.client("lambda", region_name=REGION).create_function(
        FunctionName="chat",
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )["FunctionArn"]


def test_a_lambda_stack_invokes_the_function_and_is_adopted_as_aws_proxy(moto_aws, tmp_path):
    arn = _lambda_function()
    record = ApiGateway.objects.create(
        api_name="chat", target_base_endpoint=BASE, region=REGION, integration_type="AWS_PROXY", lambda_function_arn=arn
    )
    record.additional_routes.create(name="send", route_key="send", integration_url=BASE + "send")
    text = export(record, tmp_path, template_format="sam")
    assert "IntegrationSecret" not in text  # the function is invoked by AWS: no secret header
    deploy(text, {})
    [api] = moto_aws.get_apis()["Items"]
    [integration] = moto_aws.get_integrations(ApiId=api["ApiId"])["Items"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["IntegrationUri"] == (
        f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations"
    )
    routes = moto_aws.get_routes(ApiId=api["ApiId"])["Items"]
    assert {r["Target"] for r in routes} == {f"integrations/{integration['IntegrationId']}"}
    policy = json.loads(boto3.client("lambda", region_name=REGION).get_policy(FunctionName="chat")["Policy"])
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert api["ApiId"] in json.dumps(statement["Condition"])

    record.delete()
    call_command("adopt_api_gateway", api_id=api["ApiId"], region=REGION, target_base_endpoint=BASE, stdout=StringIO())
    adopted = ApiGateway.objects.get(api_id=api["ApiId"])
    assert (adopted.integration_type, adopted.lambda_function_arn, adopted.target_base_endpoint) == (
        "AWS_PROXY",
        arn,
        BASE,
    )
    assert list(adopted.additional_routes.values_list("route_key", flat=True)) == ["send"]


# --- adopt_api_gateway: what it refuses, and what it changes ------------------------------


def adopt(**options):
    out = StringIO()
    call_command("adopt_api_gateway", region=REGION, stdout=out, **options)
    return out.getvalue()


def created_by_sync(moto_aws):
    """An API made by create_api_gateway's code, and its record (then deleted)."""
    record = ApiGateway.objects.create(api_name="made", target_base_endpoint=BASE, region=REGION)
    record.additional_routes.create(name="send", route_key="send", integration_url=BASE + "send")
    provisioning.sync_api(record, client=moto_aws)
    record.refresh_from_db()
    return record


def test_adopt_refuses_what_is_not_a_websocket_api_of_this_package(moto_aws):
    http = moto_aws.create_api(Name="http", ProtocolType="HTTP")["ApiId"]
    with pytest.raises(CommandError, match=f"API {http} is HTTP, not WEBSOCKET"):
        adopt(api_id=http)
    bare = moto_aws.create_api(Name="bare", ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action")
    with pytest.raises(CommandError, match=r"has no \$connect, \$disconnect, \$default route"):
        adopt(api_id=bare["ApiId"])
    with pytest.raises(CommandError, match="AWS has no API nope in eu-west-1"):
        adopt(api_id="nope")
    assert not ApiGateway.objects.exists()


def test_adopt_needs_the_stage_named_when_there_are_several(moto_aws):
    made = created_by_sync(moto_aws)
    moto_aws.create_stage(ApiId=made.api_id, StageName="staging")
    made.delete()
    with pytest.raises(CommandError, match=r"has 2 stages \(production, staging\): name one with --stage-name"):
        adopt(api_id=made.api_id)
    with pytest.raises(CommandError, match="has no stage 'qa'"):
        adopt(api_id=made.api_id, stage_name="qa")
    adopt(api_id=made.api_id, stage_name="staging")
    assert ApiGateway.objects.get().stage_name == "staging"


def test_adopt_refuses_a_record_of_another_api_and_a_name_in_use(moto_aws):
    made = created_by_sync(moto_aws)
    other = ApiGateway.objects.create(api_name="other", target_base_endpoint=BASE, region=REGION, api_id="zzz")
    with pytest.raises(CommandError, match=f"records API zzz, not {made.api_id}"):
        adopt(api_id=made.api_id, pk=other.pk)
    with pytest.raises(CommandError, match="API Gateway with this Api name already exists"):
        adopt(api_id=made.api_id)  # a new record named 'made': the made record has the name
    assert ApiGateway.objects.count() == 2


def test_adopt_dry_run_writes_nothing_and_a_real_run_replaces_the_routes(moto_aws):
    made = created_by_sync(moto_aws)
    api_id, secret = made.api_id, made.integration_secret
    made.delete()
    record = ApiGateway.objects.create(api_name="mine", target_base_endpoint="https://old.example.com/", region=REGION)
    record.additional_routes.create(name="gone", route_key="gone", integration_url="https://old.example.com/g")
    out = adopt(api_id=api_id, pk=record.pk, dry_run=True)
    assert "  would set api_name = 'made'\n" in out and "  would set integration_secret = (the mapped secret)\n" in out
    assert "  would remove additional route gone (not in AWS)\n" in out and secret not in out
    record.refresh_from_db()
    assert (record.api_id, record.api_name) == ("", "mine")
    adopt(api_id=api_id, pk=record.pk)
    record.refresh_from_db()
    assert (record.api_id, record.api_name, record.target_base_endpoint, record.integration_secret) == (
        api_id,
        "made",
        BASE,
        secret,
    )
    assert list(record.additional_routes.values_list("route_key", "integration_url", "deployed")) == [
        ("send", BASE + "send", True)
    ]
    out = StringIO()
    call_command("sync_api_gateway", pk=record.pk, dry_run=True, stdout=out)
    assert "No drift: AWS matches the record." in out.getvalue()


def test_adopting_again_after_the_api_changed_brings_the_record_in_step(moto_aws):
    """A template change deployed by the stack (here made directly in AWS) is taken into the
    record by adopting again; the drift report is then empty."""
    record = created_by_sync(moto_aws)
    routes = {r["RouteKey"]: r for r in moto_aws.get_routes(ApiId=record.api_id)["Items"]}
    for key, segment in (("$connect", "connect"), ("$disconnect", "disconnect"), ("$default", "default")):
        integration_id = routes[key]["Target"].removeprefix("integrations/")
        moto_aws.update_integration(
            ApiId=record.api_id, IntegrationId=integration_id, IntegrationUri=f"https://new.example.com/ws/{segment}"
        )
    moto_aws.update_api(ApiId=record.api_id, Description="now with a description")
    out = StringIO()
    call_command("sync_api_gateway", pk=record.pk, dry_run=True, stdout=out)
    assert "IntegrationUri 'https://new.example.com/ws/connect' in AWS" in out.getvalue()
    out = adopt(api_id=record.api_id, pk=record.pk)
    assert "  set target_base_endpoint = 'https://new.example.com/ws/'\n" in out
    assert "  set api_description = 'now with a description'\n" in out
    out = StringIO()
    call_command("sync_api_gateway", pk=record.pk, dry_run=True, stdout=out)
    assert "No drift: AWS matches the record." in out.getvalue()


def test_what_the_record_cannot_say_is_reported_and_left_as_drift(moto_aws):
    """$disconnect posting somewhere else than target_base_endpoint + 'disconnect': the record
    cannot hold it; adopt says so and the dry run reports it."""
    record = created_by_sync(moto_aws)
    routes = {r["RouteKey"]: r for r in moto_aws.get_routes(ApiId=record.api_id)["Items"]}
    integration_id = routes["$disconnect"]["Target"].removeprefix("integrations/")
    moto_aws.update_integration(
        ApiId=record.api_id, IntegrationId=integration_id, IntegrationUri="https://elsewhere.example.com/bye"
    )
    out = adopt(api_id=record.api_id, pk=record.pk)
    assert (
        "What AWS holds that the record cannot say:\n  route $disconnect posts to 'https://elsewhere.example.com/bye'"
        in out
    )
    out = StringIO()
    call_command("sync_api_gateway", pk=record.pk, dry_run=True, stdout=out)
    assert "IntegrationUri 'https://elsewhere.example.com/bye' in AWS" in out.getvalue()


def test_adopt_dry_run_into_a_new_record_creates_none(moto_aws):
    made = created_by_sync(moto_aws)
    made.delete()
    out = adopt(api_id=made.api_id, dry_run=True)
    assert f"  would set api_id = '{made.api_id}'\n" in out and "  would record route send -> " in out
    assert not ApiGateway.objects.exists()


def test_an_api_name_the_record_cannot_hold_is_refused_with_the_field(moto_aws):
    made = created_by_sync(moto_aws)
    made.delete()
    moto_aws.update_api(ApiId=made.api_id, Name="chat.ws!")
    with pytest.raises(CommandError, match=r"the record cannot hold API \w+ as AWS has it: .*api_name"):
        adopt(api_id=made.api_id)
    assert not ApiGateway.objects.exists()
