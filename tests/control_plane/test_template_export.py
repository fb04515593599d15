"""export_api_gateway (issue #28): the template says what create_api_gateway creates, every
shape passes cfn-lint (the registry's CloudFormation linter, run as users run it), and the
integration secret is never in it."""

import json
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from django_aws_api_gateway_websockets.models import ApiGateway
from django_aws_api_gateway_websockets.provisioning import desired_routes, iam_policy, integration_params
from django_aws_api_gateway_websockets.provisioning.api import stage_settings
from django_aws_api_gateway_websockets.provisioning.template import export_template, render

pytestmark = pytest.mark.django_db

BASE = "https://www.example.com/ws/"
CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"
FUNCTION = "arn:aws:lambda:eu-west-1:123456789012:function:chat"
CFN_LINT = Path(sys.executable).with_name("cfn-lint")


def make(shape):
    """A record of each shape the issue names, and a few more."""
    record = ApiGateway.objects.create(api_name=f"chat-{shape}", target_base_endpoint=BASE, region="eu-west-1")
    if shape in ("routes", "everything"):
        record.additional_routes.create(name="send", route_key="chat.send", integration_url=BASE + "send", two_way=True)
        record.additional_routes.create(name="typing", route_key="typing", integration_url="https://b.example.com/t")
        record.default_route_two_way = True
    if shape in ("domain", "domain-no-zone", "everything"):
        record.domain_name, record.certificate_arn = "ws.example.com", CERT
        record.hosted_zone_id = "" if shape == "domain-no-zone" else "Z123"
    if shape in ("lambda", "lambda-routes"):
        record.integration_type, record.lambda_function_arn = "AWS_PROXY", FUNCTION
    if shape == "lambda-routes":
        record.additional_routes.create(name="send", route_key="send", integration_url=BASE + "send", two_way=True)
    if shape == "everything":
        record.throttling_burst_limit, record.throttling_rate_limit = 100, 20.5
        record.access_log_destination_arn = "arn:aws:logs:eu-west-1:123456789012:log-group:ws"
        record.api_description, record.stage_description, record.tags = "Chat", "v2", {"team": "web", "cost": "ws"}
    record.save()
    return record


SHAPES = ["minimal", "routes", "domain", "domain-no-zone", "lambda", "lambda-routes", "everything"]


def lint(paths):
    """cfn-lint's findings (its JSON output) for these files."""
    done = subprocess.run(
        [str(CFN_LINT), "--format", "json", "--regions", "eu-west-1", "us-east-1", "--", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 2, 4, 6, 8, 10, 12, 14), done.stderr  # 1 would be a crash
    return json.loads(done.stdout or "[]")


def test_every_shape_passes_cfn_lint(tmp_path):
    paths = []
    for shape in SHAPES:
        record = make(shape)
        for template_format in ("cloudformation", "sam"):
            for secret in ("parameter", "secretsmanager"):
                for syntax in ("json", "yaml"):
                    path = tmp_path / f"{shape}-{template_format}-{secret}.{syntax}"
                    path.write_text(render(export_template(record, template_format, secret), syntax))
                    paths.append(path)
    findings = lint(paths)
    errors = [f for f in findings if f["Level"] == "Error"]
    assert errors == [], json.dumps(errors, indent=1)
    assert findings == [], json.dumps(findings, indent=1)  # no warnings either, today


def test_cfn_lint_does_see_a_broken_template(tmp_path):
    """The control: the same linter finds a dangling reference and a property that does not exist."""
    template = export_template(make("routes"))
    template["Resources"]["RouteConnect"]["Properties"]["Target"] = {"Ref": "Missing"}
    template["Resources"]["Stage"]["Properties"]["ThrottleEverything"] = True
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(template))
    rules = {f["Rule"]["Id"] for f in lint([path]) if f["Level"] == "Error"}
    assert {"E1020", "E3002"} <= rules


def substitute(value, secret):
    """An ``Fn::Sub`` of the secret parameter, as CloudFormation resolves it."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        return value["Fn::Sub"].replace("${IntegrationSecret}", secret)
    return value


def test_the_template_says_what_create_api_gateway_creates():
    """Each integration has exactly the properties sync_api sends (the same function makes
    them), the routes are desired_routes, the stage has stage_settings."""
    record = make("everything")
    template = export_template(record)
    resources = template["Resources"]
    routes = {r["Properties"]["RouteKey"]: r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Route"}
    wanted = desired_routes(record)
    assert set(routes) == set(wanted) == {"$connect", "$disconnect", "$default", "chat.send", "typing"}
    for key, (uri, two_way) in wanted.items():
        route = routes[key]["Properties"]
        integration_id = route["Target"]["Fn::Join"][1][1]["Ref"]
        integration = dict(resources[integration_id]["Properties"])
        assert integration.pop("ApiId") == {"Ref": "Api"} and integration.pop("IntegrationType") == "HTTP_PROXY"
        integration["RequestParameters"] = {
            k: substitute(v, record.integration_secret) for k, v in integration["RequestParameters"].items()
        }
        assert integration == integration_params(record, uri)
        assert ("RouteResponseSelectionExpression" in route) is two_way
        two_way_responses = [
            r
            for r in resources.values()
            if r["Type"] == "AWS::ApiGatewayV2::RouteResponse"
            and r["Properties"]["RouteId"] == {"Ref": f"Route{integration_id.removeprefix('Integration')}"}
        ]
        assert len(two_way_responses) == (1 if two_way else 0)
    stage = resources["Stage"]["Properties"]
    assert {k: stage[k] for k in stage_settings(record)} == stage_settings(record)
    assert stage["StageName"] == "production" and stage["Description"] == "v2"
    api = resources["Api"]["Properties"]
    assert api["Tags"]["team"] == "web" and api["RouteSelectionExpression"] == "$request.body.action"
    domain = resources["DomainName"]["Properties"]["DomainNameConfigurations"]
    assert domain == [{"CertificateArn": CERT, "EndpointType": "REGIONAL", "SecurityPolicy": "TLS_1_2"}]
    assert resources["DomainAlias"]["Properties"]["HostedZoneId"] == "Z123"


def test_the_runtime_policy_is_websocket_iam_policys():
    record = make("minimal")
    record.api_id = "abc123"
    resources = export_template(record)["Resources"]
    [statement] = resources["RuntimePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    resolved = statement["Resource"]["Fn::Sub"].replace("${AWS::Region}", "eu-west-1")
    resolved = resolved.replace("${AWS::AccountId}", "123456789012").replace("${Api}", "abc123")
    assert {**statement, "Resource": resolved} == iam_policy(record, "runtime", "123456789012")["Statement"][0]


@pytest.mark.parametrize("secret", ["parameter", "secretsmanager"])
@pytest.mark.parametrize("syntax", ["json", "yaml"])
def test_the_secret_is_never_written(secret, syntax):
    record = make("everything")
    record.previous_integration_secret = "the-previous-secret-value"
    text = render(export_template(record, "sam", secret), syntax)
    assert record.integration_secret not in text and "the-previous-secret-value" not in text
    template = json.loads(text) if syntax == "json" else yaml.safe_load(text)
    if secret == "parameter":
        assert template["Parameters"]["IntegrationSecret"]["NoEcho"] is True
    else:
        assert "NoEcho" not in template["Parameters"]["IntegrationSecretId"]  # a name, not the secret
        mapping = template["Resources"]["IntegrationConnect"]["Properties"]["RequestParameters"]
        assert mapping["integration.request.header.X-Gateway-Secret"] == {
            "Fn::Sub": "'{{resolve:secretsmanager:${IntegrationSecretId}}}'"
        }


def test_a_lambda_record_has_one_proxy_integration_and_a_permission():
    record = make("lambda-routes")
    template = export_template(record, "sam")
    resources = template["Resources"]
    assert "Parameters" not in template and template["Transform"] == "AWS::Serverless-2016-10-31"
    integrations = [r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Integration"]
    assert integrations == [resources["LambdaIntegration"]]
    # The function's region and partition (from its ARN), as sync_api_gateway writes the URI.
    assert resources["LambdaIntegration"]["Properties"]["IntegrationUri"] == (
        f"arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/{FUNCTION}/invocations"
    )
    assert resources["LambdaInvokePermission"]["Properties"]["FunctionName"] == FUNCTION
    targets = {json.dumps(r["Properties"]["Target"]) for r in resources.values() if r["Type"].endswith("::Route")}
    assert targets == {json.dumps({"Fn::Join": ["/", ["integrations", {"Ref": "LambdaIntegration"}]]})}


def deployment_id(template):
    [name] = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::ApiGatewayV2::Deployment"]
    return name


def test_a_new_deployment_when_the_routes_change_not_when_the_secret_does():
    """CloudFormation deploys again only for a new logical id: a changed route gets one;
    the secret (a reference) does not enter it, so its value is not leaked by a digest."""
    record = make("routes")
    first = deployment_id(export_template(record))
    record.integration_secret = "another"
    record.save()
    assert deployment_id(export_template(record)) == first
    record.additional_routes.filter(route_key="typing").update(integration_url="https://c.example.com/t")
    assert deployment_id(export_template(record)) != first
    route_ids = export_template(record)["Resources"][deployment_id(export_template(record))]["DependsOn"]
    assert "RouteTyping" in route_ids and "RouteResponseChatSend" in route_ids


def test_route_keys_that_clash_as_logical_ids_get_distinct_ones():
    record = make("minimal")
    for n, key in enumerate(["chat.send", "chat-send", "chat_send", "chatSend", "x" * 64]):
        record.additional_routes.create(name=f"r{n}", route_key=key, integration_url=f"{BASE}r{n}")
    resources = export_template(record)["Resources"]
    routes = {r["Properties"]["RouteKey"]: k for k, r in resources.items() if r["Type"].endswith("::Route")}
    assert len(set(routes.values())) == len(routes) == 8
    assert all(re.fullmatch(r"[A-Za-z0-9]{1,255}", name) for name in resources)


# --- the command ------------------------------------------------------------------------


def test_command_prints_json_by_default_and_writes_yaml_to_a_yaml_file(tmp_path):
    record = make("domain")
    out = StringIO()
    call_command("export_api_gateway", pk=record.pk, stdout=out)
    assert json.loads(out.getvalue())["Resources"]["DomainAlias"]["Type"] == "AWS::Route53::RecordSet"
    path = tmp_path / "gateway.yaml"
    err = StringIO()
    call_command("export_api_gateway", pk=record.pk, format="sam", output=str(path), stdout=StringIO(), stderr=err)
    assert yaml.safe_load(path.read_text()) == export_template(record, "sam")
    assert f"to {path}" in err.getvalue()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"target_base_endpoint": None}, "set target_base_endpoint"),
        ({"integration_type": "AWS_PROXY"}, "lambda_function_arn '' is not a Lambda function ARN"),
        (
            {"integration_type": "AWS_PROXY", "lambda_function_arn": "arn:aws:lambda:eu-west-1:1:function:x"},
            "is not a Lambda function ARN",
        ),
        (
            {"integration_type": "AWS_PROXY", "lambda_function_arn": FUNCTION + "}${AWS::AccountId}"},
            "is not a Lambda function ARN",
        ),
        ({"domain_name": "ws.example.com"}, "needs both domain_name and certificate_arn"),
    ],
)
def test_command_refuses_a_record_that_cannot_be_a_template(change, message):
    record = make("minimal")
    ApiGateway.objects.filter(pk=record.pk).update(**change)
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("export_api_gateway", pk=record.pk, stdout=StringIO())


def test_command_names_a_missing_record():
    with pytest.raises(CommandError, match="No ApiGateway record with pk 999"):
        call_command("export_api_gateway", pk=999, stdout=StringIO())


def test_the_docs_sam_example_is_what_the_command_writes():
    """docs/infrastructure-as-code.md shows a shortened export: each resource it shows is the
    command's, property for property (the page leaves some properties out, never changes one)."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "infrastructure-as-code.md").read_text()
    [block] = re.findall(r"```yaml\n(.*?)```", page, re.S)
    shown = yaml.safe_load(block)
    record = ApiGateway.objects.create(api_name="chat", target_base_endpoint=BASE, region="eu-west-1")
    exported = export_template(record, "sam", "secretsmanager", "chat/websocket/integration-secret")
    assert shown["Transform"] == exported["Transform"]
    for name, parameter in shown["Parameters"].items():
        assert parameter.items() <= exported["Parameters"][name].items()
    for name, resource in shown["Resources"].items():
        assert resource["Type"] == exported["Resources"][name]["Type"]
        assert resource["Properties"].items() <= exported["Resources"][name]["Properties"].items(), name
    for resource in ("AWS::ApiGatewayV2::Api", "AWS::Route53::RecordSet", "AWS::IAM::ManagedPolicy"):
        assert resource in page


def test_a_stage_name_that_would_inject_a_reference_is_refused():
    """The stage name goes into Fn::Sub strings; one saved past the admin's validator must
    not become a reference to another parameter or resource."""
    record = make("minimal")
    ApiGateway.objects.filter(pk=record.pk).update(stage_name="live/${IntegrationSecret}")
    with pytest.raises(CommandError, match=re.escape("stage_name 'live/${IntegrationSecret}': use letters")):
        call_command("export_api_gateway", pk=record.pk, stdout=StringIO())


def test_more_routes_than_cloudformation_allows_is_refused_with_the_count():
    record = make("minimal")
    record.additional_routes.bulk_create(
        [
            record.additional_routes.model(api_gateway=record, name=f"r{n}", route_key=f"r{n}", integration_url=BASE)
            for n in range(250)
        ]
    )
    with pytest.raises(CommandError, match="would have 510 resources; CloudFormation allows 500"):
        call_command("export_api_gateway", pk=record.pk, stdout=StringIO())


def test_yaml_without_pyyaml_says_how_to_get_it(monkeypatch):
    record = make("minimal")
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    with pytest.raises(CommandError, match=re.escape("YAML output needs PyYAML (pip install PyYAML); or use JSON.")):
        call_command("export_api_gateway", pk=record.pk, syntax="yaml", stdout=StringIO())
