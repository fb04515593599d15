"""The integration secret of a template-managed API (issue #28): stored in Secrets Manager by
export_api_gateway, never printed, and rotated with the grace period (moto's Secrets Manager)."""

import json
from datetime import timedelta
from io import StringIO

import boto3
import pytest
from botocore.stub import Stubber
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from moto import mock_aws

from django_aws_api_gateway_websockets import aws
from django_aws_api_gateway_websockets.models import ApiGateway
from django_aws_api_gateway_websockets.provisioning.template import export_template

pytestmark = pytest.mark.django_db

REGION = "eu-west-1"
SECRET_ID = "chat/websocket/integration-secret"


@pytest.fixture
def secretsmanager():
    aws.clear_clients()
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=REGION)
    aws.clear_clients()


@pytest.fixture
def record():
    return ApiGateway.objects.create(api_name="chat", target_base_endpoint="https://www.example.com/ws/", region=REGION)


def export(record, **options):
    out, err = StringIO(), StringIO()
    call_command("export_api_gateway", pk=record.pk, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def deployment(template):
    return next(k for k, r in template["Resources"].items() if r["Type"] == "AWS::ApiGatewayV2::Deployment")


def test_store_secret_puts_the_value_in_secrets_manager_and_never_prints_it(secretsmanager, record):
    text, err = export(record, secret_id=SECRET_ID, store_secret=True)
    assert secretsmanager.get_secret_value(SecretId=SECRET_ID)["SecretString"] == record.integration_secret
    assert record.integration_secret not in text + err
    assert f"Created Secrets Manager secret {SECRET_ID}" in err
    template = json.loads(text)
    assert template["Parameters"] == {
        "IntegrationSecretId": {
            "Type": "String",
            "MinLength": 1,
            "Default": SECRET_ID,
            "Description": "Name or ARN of the Secrets Manager secret whose SecretString is the record's "
            "integration_secret.",
        }
    }
    _, err = export(record, secret_id=SECRET_ID, store_secret=True)  # again: the same secret, a new version
    assert f"Updated Secrets Manager secret {SECRET_ID}" in err
    assert len(secretsmanager.list_secret_version_ids(SecretId=SECRET_ID)["Versions"]) == 2


def test_rotate_secret_keeps_the_old_one_valid_stores_the_new_one_and_redeploys(secretsmanager, record):
    old = record.integration_secret
    before = deployment(export_template(record, "cloudformation", "secretsmanager", SECRET_ID))
    text, _ = export(record, secret_id=SECRET_ID, store_secret=True, rotate_secret=True)
    record.refresh_from_db()
    assert record.integration_secret != old and record.previous_integration_secret == old
    assert timezone.now() - record.secret_rotated_at < timedelta(minutes=1)
    assert secretsmanager.get_secret_value(SecretId=SECRET_ID)["SecretString"] == record.integration_secret
    assert old not in text and record.integration_secret not in text
    assert (
        deployment(json.loads(text)) != before
    )  # a stack update makes a new deployment: the stage sends the new secret


def test_a_rotation_whose_secret_cannot_be_stored_is_undone(record):
    aws.clear_clients()
    client = aws.get_client("secretsmanager", region=REGION)
    with Stubber(client) as stubber:
        stubber.add_response("describe_secret", {"Name": SECRET_ID}, {"SecretId": SECRET_ID})
        stubber.add_client_error("put_secret_value", "LimitExceededException", "too many versions")
        old = record.integration_secret
        with pytest.raises(CommandError, match="put_secret_value failed: LimitExceededException: too many versions"):
            export(record, secret_id=SECRET_ID, store_secret=True, rotate_secret=True)
        stubber.assert_no_pending_responses()
    aws.clear_clients()
    record.refresh_from_db()
    assert (record.integration_secret, record.previous_integration_secret, record.secret_rotated_at) == (old, "", None)


def test_store_secret_needs_a_secret_id(record):
    with pytest.raises(CommandError, match="--store-secret needs --secret-id"):
        export(record, store_secret=True)


def test_a_lambda_api_has_no_secret_to_rotate(record):
    ApiGateway.objects.filter(pk=record.pk).update(
        integration_type="AWS_PROXY", lambda_function_arn="arn:aws:lambda:eu-west-1:123456789012:function:chat"
    )
    with pytest.raises(CommandError, match="maps no integration secret"):
        export(record, rotate_secret=True)
    record.refresh_from_db()
    assert record.secret_rotated_at is None


def test_a_record_that_cannot_be_exported_is_not_rotated(record):
    ApiGateway.objects.filter(pk=record.pk).update(domain_name="ws.example.com")
    old = record.integration_secret
    with pytest.raises(CommandError, match="needs both domain_name and certificate_arn"):
        export(record, rotate_secret=True)
    record.refresh_from_db()
    assert record.integration_secret == old
