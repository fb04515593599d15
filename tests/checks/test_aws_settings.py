"""Credentials and regions (docs/settings.md): one module builds and caches the clients."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_aws_api_gateway_websockets import aws


@pytest.fixture(autouse=True)
def fresh_clients():
    aws.clear_clients()
    yield
    aws.clear_clients()


def credentials(client):
    creds = client._request_signer._credentials
    return creds.access_key, creds.secret_key


def test_explicit_keys(settings):
    settings.AWS_ACCESS_KEY_ID, settings.AWS_SECRET_ACCESS_KEY = "AKIAEXAMPLE", "secret1"
    assert credentials(aws.get_client("apigatewayv2")) == ("AKIAEXAMPLE", "secret1")


def test_only_one_key_is_a_clear_error(settings):
    settings.AWS_SECRET_ACCESS_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        aws.get_client("apigatewayv2")


def test_profile_wins_over_keys(settings, tmp_path, monkeypatch):
    config = tmp_path / "credentials"
    config.write_text("[deploy]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = fromprofile\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(config))
    settings.AWS_IAM_PROFILE = "deploy"
    assert credentials(aws.get_client("apigatewayv2")) == ("AKIAPROFILE", "fromprofile")


def test_unknown_profile_is_a_clear_error(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    settings.AWS_IAM_PROFILE = "missing"
    with pytest.raises(ImproperlyConfigured, match="AWS_IAM_PROFILE"):
        aws.get_client("apigatewayv2")


def test_default_chain_role_or_environment(settings, monkeypatch):
    del settings.AWS_ACCESS_KEY_ID
    del settings.AWS_SECRET_ACCESS_KEY
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fromenv")
    assert credentials(aws.get_client("apigatewayv2")) == ("AKIAENV", "fromenv")


def test_region_fallbacks(settings, monkeypatch):
    settings.AWS_GATEWAY_REGION_NAME = "eu-west-2"
    settings.AWS_REGION_NAME = "us-west-1"
    assert aws.get_region_name() == "eu-west-2"
    assert aws.get_region_name("ap-south-1") == "ap-south-1"
    settings.AWS_GATEWAY_REGION_NAME = ""
    assert aws.get_region_name() == "us-west-1"
    del settings.AWS_REGION_NAME
    monkeypatch.setenv("AWS_DEFAULT_REGION", "sa-east-1")
    assert aws.get_region_name() == "sa-east-1"


def test_no_region_is_a_clear_error(settings, monkeypatch, tmp_path):
    settings.AWS_GATEWAY_REGION_NAME = ""
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(ImproperlyConfigured, match="AWS_GATEWAY_REGION_NAME"):
        aws.get_region_name()


def test_clients_are_cached_per_endpoint_and_region():
    a = aws.get_client("apigatewaymanagementapi", endpoint_url="https://x.example/prod")
    assert aws.get_client("apigatewaymanagementapi", endpoint_url="https://x.example/prod") is a
    assert aws.get_client("apigatewaymanagementapi", endpoint_url="https://y.example/prod") is not a
    assert aws.get_client("apigatewayv2", region="us-east-1").meta.region_name == "us-east-1"


def test_local_endpoint_needs_no_credentials():
    from botocore import UNSIGNED

    client = aws.get_client("apigatewaymanagementapi", endpoint_url="http://127.0.0.1:8001/local")
    assert client.meta.config.signature_version is UNSIGNED
