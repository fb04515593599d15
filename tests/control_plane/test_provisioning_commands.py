"""The AWS management commands: output per step, non-zero exit with AWS's error, dry runs,
confirmation before deleting, and IAM policies (account id from STS via the Stubber)."""

import json
from io import StringIO

import pytest
from botocore.stub import Stubber
from django.core.management import CommandError, call_command

from django_aws_api_gateway_websockets import aws, provisioning
from django_aws_api_gateway_websockets.models import ApiGateway

from .test_provisioning import API, ENDPOINT, AwsState, client, expected_sync, queue, record  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


def command(name, *args, **kwargs):
    out = StringIO()
    call_command(name, *args, stdout=out, **kwargs)
    return out.getvalue()


def test_create_prints_each_step_and_the_url(record, client):
    queue(client.stubber, expected_sync(record, AwsState()))
    out = command("createApiGateway", pk=record.pk)
    assert "  create WEBSOCKET API 'chat'\n" in out and "  create route chat (two-way)\n" in out
    assert out.rstrip().endswith(f"API {API} deployed: {ENDPOINT}/production")


def test_aws_failure_exits_non_zero_with_code_and_message(record, client):
    client.stubber.add_client_error(
        "create_api", "AccessDeniedException", "not allowed to apigateway:POST", http_status_code=403
    )
    with pytest.raises(CommandError, match="create_api failed: AccessDeniedException: not allowed to apigateway:POST"):
        command("createApiGateway", pk=record.pk)
    record.refresh_from_db()
    assert record.provisioning_status == "pending"
    assert record.last_error == "create_api failed: AccessDeniedException: not allowed to apigateway:POST"


def test_sync_dry_run_prints_would_and_changes_nothing(record, client):
    state = AwsState()
    calls = expected_sync(record, state)
    queue(client.stubber, calls)
    command("createApiGateway", pk=record.pk)
    record.refresh_from_db()
    record.target_base_endpoint = "https://new.example.com/ws/"
    record.save()
    reads = [c for c in expected_sync(record, calls[-1].after) if c.operation.startswith("get_")]
    queue(client.stubber, reads)
    out = command("syncApiGateway", pk=record.pk, dry_run=True)
    assert (
        "  would update integration of route $connect (POST https://new.example.com/ws/connect, mapped headers)" in out
    )
    assert "  would deploy stage 'production'" in out
    assert "  unchanged: route $connect" in out
    assert ApiGateway.objects.get(pk=record.pk).deployment_id == "dep1"


def test_sync_of_an_api_in_sync_says_so(record, client):
    calls = expected_sync(record, AwsState())
    queue(client.stubber, calls)
    command("createApiGateway", pk=record.pk)
    record.refresh_from_db()
    queue(client.stubber, expected_sync(record, calls[-1].after))
    out = command("syncApiGateway", pk=record.pk)
    assert "  nothing to change" in out and "Already in sync." in out


def test_unknown_pk_is_a_clear_error():
    for name in ("createApiGateway", "createCustomDomain", "syncApiGateway", "deleteApiGateway"):
        with pytest.raises(CommandError, match="No ApiGateway record with pk 999"):
            command(name, pk=999)


def test_delete_refuses_without_yes_and_deletes_with_it(record, client):
    with pytest.raises(CommandError, match="--yes"):
        command("deleteApiGateway", pk=record.pk)
    ApiGateway.objects.filter(pk=record.pk).update(api_id=API, api_created=True)
    client.stubber.add_response("get_api", {"ApiId": API}, {"ApiId": API})
    client.stubber.add_response("delete_api", {}, {"ApiId": API})
    out = command("deleteApiGateway", pk=record.pk, yes=True)
    assert f"  delete API {API} with its routes, integrations and stages" in out
    assert ApiGateway.objects.get(pk=record.pk).api_id == ""


def test_custom_domain_command_reports_missing_fields(record):
    ApiGateway.objects.filter(pk=record.pk).update(api_id=API, api_created=True)
    with pytest.raises(CommandError, match="set domain_name and certificate_arn first"):
        command("createCustomDomain", pk=record.pk)


# --- IAM ---------------------------------------------------------------------------------


@pytest.fixture
def created(record):
    ApiGateway.objects.filter(pk=record.pk).update(
        api_id=API,
        api_created=True,
        domain_name="ws.example.com",
        hosted_zone_id="Z123",
        certificate_arn="arn:aws:acm:eu-west-1:123456789012:certificate/abc",
    )
    record.refresh_from_db()
    return record


def test_runtime_policy_allows_only_this_stages_connections(created):
    policy = json.loads(command("websocketIamPolicy", "--runtime", pk=created.pk, account_id="123456789012"))
    assert policy == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ManageThisStagesConnections",
                "Effect": "Allow",
                "Action": "execute-api:ManageConnections",
                "Resource": f"arn:aws:execute-api:eu-west-1:123456789012:{API}/production/*/@connections/*",
            }
        ],
    }


def test_runtime_policy_asks_sts_for_the_account(created):
    aws.clear_clients()
    sts = aws.get_client("sts", region="eu-west-1")
    with Stubber(sts) as stub:
        stub.add_response(
            "get_caller_identity",
            {"Account": "210987654321", "Arn": "arn:aws:iam::210987654321:user/x", "UserId": "x"},
            {},
        )
        policy = json.loads(command("websocketIamPolicy", "--runtime", pk=created.pk))
    assert ":210987654321:" in policy["Statement"][0]["Resource"]
    with Stubber(sts) as stub:
        stub.add_client_error("get_caller_identity", "ExpiredToken", "token expired", http_status_code=403)
        with pytest.raises(CommandError, match="pass --account-id"):
            command("websocketIamPolicy", "--runtime", pk=created.pk)
    aws.clear_clients()


def test_deploy_policy_names_this_api_domain_certificate_and_zone(created):
    statements = json.loads(command("websocketIamPolicy", "--deploy", pk=created.pk))["Statement"]
    assert statements[0]["Resource"] == [
        "arn:aws:apigateway:eu-west-1::/apis",
        f"arn:aws:apigateway:eu-west-1::/apis/{API}",
        f"arn:aws:apigateway:eu-west-1::/apis/{API}/*",
        "arn:aws:apigateway:eu-west-1::/tags/*",
        "arn:aws:apigateway:eu-west-1::/domainnames",
        "arn:aws:apigateway:eu-west-1::/domainnames/ws.example.com",
        "arn:aws:apigateway:eu-west-1::/domainnames/ws.example.com/*",
    ]
    assert statements[1] == {
        "Sid": "CheckTheCertificate",
        "Effect": "Allow",
        "Action": "acm:DescribeCertificate",
        "Resource": created.certificate_arn,
    }
    assert statements[2]["Action"] == ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"]
    assert statements[2]["Resource"] == "arn:aws:route53:::hostedzone/Z123"


def test_policies_refuse_what_they_cannot_scope(record):
    with pytest.raises(CommandError, match="no id yet"):
        command("websocketIamPolicy", "--runtime", pk=record.pk, account_id="123456789012")
    record.api_id = API
    with pytest.raises(provisioning.ProvisioningError, match="12 digits"):
        provisioning.iam_policy(record, "runtime", "12345")
