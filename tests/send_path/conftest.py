"""Fixtures of the send path's tests."""

import pytest

from django_aws_api_gateway_websockets.models import ApiGateway


@pytest.fixture
def presence_gateway(db):
    """A gateway whose integrations are HistoryView's (BROADCAST_PRESENCE = True)."""
    return ApiGateway.objects.create(
        api_name="presence",
        api_id="pres123456",
        region="eu-west-1",
        target_base_endpoint="https://www.example.com/history/",
    )
