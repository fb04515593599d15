import pytest

from django_aws_api_gateway_websockets.aws_lambda import make_handler
from django_aws_api_gateway_websockets.models import ApiGateway, IntegrationType
from django_aws_api_gateway_websockets.testing import keep_database_connections

FUNCTION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:chat"


@pytest.fixture
def lambda_gateway(db, settings):
    # The event's Host is the API's domain: a project lists it in ALLOWED_HOSTS (docs/lambda.md).
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, ".execute-api.eu-west-1.amazonaws.com"]
    return ApiGateway.objects.create(
        api_name="chat-lambda",
        api_id="lam123def4",
        region="eu-west-1",
        integration_type=IntegrationType.AWS_PROXY,
        lambda_function_arn=FUNCTION_ARN,
    )


@pytest.fixture
def handler():
    with keep_database_connections():
        yield make_handler(view_path="/ws/")
