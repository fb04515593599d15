"""The old package's helper names that users' code calls: same results as the new modules."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from django_aws_api_gateway_websockets import aws, tokens
from django_aws_api_gateway_websockets.models import ConnectionRateLimit, WebSocketToken

pytestmark = pytest.mark.django_db


def test_get_boto3_client_is_the_cached_client(settings):
    settings.AWS_GATEWAY_REGION_NAME = "eu-west-1"
    client = aws.get_boto3_client()
    assert client.meta.service_model.service_name == "apigatewayv2"
    assert client.meta.region_name == "eu-west-1"
    assert client is aws.get_client("apigatewayv2")


def test_token_classmethods(user):
    raw = WebSocketToken.generate_token(user, "session-1")
    assert WebSocketToken.validate_and_consume(raw, "session-1") == user
    assert WebSocketToken.validate_and_consume(raw, "session-1") is None  # single use
    fresh = WebSocketToken.generate_token(user, "session-1")
    old = WebSocketToken.generate_token(user, "session-1")
    WebSocketToken.objects.filter(token=tokens.hash_token(old)).update(
        created_at=timezone.now() - timedelta(minutes=10)
    )
    # The used token and the ten-minute-old one go; the fresh unused one stays.
    assert WebSocketToken.cleanup_expired(max_age_seconds=300) == (
        2,
        {"django_aws_api_gateway_websockets.WebSocketToken": 2},
    )
    assert WebSocketToken.validate_and_consume(fresh, "session-1") == user


def test_token_issuance_limit(user):
    for _ in range(3):
        WebSocketToken.generate_token(user, "s")
    assert WebSocketToken.check_rate_limit(user, max_tokens_per_minute=4) is True
    WebSocketToken.generate_token(user, "s")
    assert WebSocketToken.check_rate_limit(user, max_tokens_per_minute=4) is False


def test_connection_rate_limit_classmethods(user):
    for _ in range(2):
        ConnectionRateLimit.record_attempt("10.0.0.1", user, successful=True)
    ConnectionRateLimit.record_attempt("10.0.0.2", AnonymousUser(), reason="origin")
    assert ConnectionRateLimit.objects.get(ip_address="10.0.0.2").user is None
    assert ConnectionRateLimit.check_rate_limit("10.0.0.1", user, max_attempts=3, window_minutes=1) == (True, 2)
    # The user's attempts count from another address too.
    assert ConnectionRateLimit.check_rate_limit("10.0.0.9", user, max_attempts=2, window_minutes=1) == (False, 2)
    ConnectionRateLimit.objects.filter(ip_address="10.0.0.2").update(attempt_time=timezone.now() - timedelta(days=8))
    assert ConnectionRateLimit.cleanup_old_records(days=7) == (
        1,
        {"django_aws_api_gateway_websockets.ConnectionRateLimit": 1},
    )
    assert ConnectionRateLimit.objects.count() == 2
