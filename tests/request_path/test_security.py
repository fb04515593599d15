import pytest
from django.test import RequestFactory

from django_aws_api_gateway_websockets import protocol, security


@pytest.mark.parametrize(
    "origin,allowed",
    [
        ("https://www.example.com", True),
        ("https://WWW.EXAMPLE.COM", True),
        ("https://app.example.org", True),  # https://*.example.org
        ("https://example.org", False),  # the wildcard needs a subdomain
        ("http://app.example.org", False),
        ("https://app.example.org.evil.com", False),
        ("https://localhost", True),  # ALLOWED_HOSTS over https
        ("https://localhost:8443", False),  # another port is another origin
        ("https://localhost:443", True),  # the default port, spelled out
        ("https://www.example.com:8443", False),
        ("https://www.example.com:443", True),
        ("https://evil.com:.example.org", False),  # a string-suffix match would take it
        ("https://evil.com#.example.org", False),
        ("https://user@app.example.org", False),
        ("https://app.example.org:99999", False),
        ("https://a.b.example.org", True),
        ("https://app.example.org:8443", False),
        ("null", False),
        ("http://localhost", False),
        ("https://evil.com", False),
        ("https://www.example.com/path", False),
        ("javascript:alert(1)", False),
        ("", False),
    ],
)
def test_origin_allowed(settings, origin, allowed):
    settings.CSRF_TRUSTED_ORIGINS = ["https://www.example.com", "https://*.example.org"]
    settings.ALLOWED_HOSTS = ["localhost"]
    assert security.origin_allowed(origin) is allowed


@pytest.mark.parametrize("allowed_hosts", [["*"], [".example.com"], ["*", "localhost"]])
@pytest.mark.parametrize("origin", ["https://evil.com", "https://www.example.com", "https://example.com"])
def test_allowed_hosts_wildcards_never_trust_an_origin(settings, allowed_hosts, origin):
    settings.CSRF_TRUSTED_ORIGINS = []
    settings.ALLOWED_HOSTS = allowed_hosts
    assert security.origin_allowed(origin) is False


@pytest.mark.parametrize(
    "trusted,origin,allowed",
    [
        ("https://*.example.com:8443", "https://a.example.com:8443", True),
        ("https://*.example.com:8443", "https://a.example.com", False),
        ("https://*.example.com", "https://a.example.com:8443", False),
        ("http://localhost:8000", "http://localhost:8000", True),
        ("http://localhost:8000", "http://localhost:8001", False),
        ("http://localhost:8000", "https://localhost:8000", False),
        ("https://*.example.com/", "https://a.example.com", True),
        ("https://*", "https://a.example.com", False),  # not a wildcard Django knows
        ("not a url", "https://a.example.com", False),
    ],
)
def test_trusted_origins_are_parsed_not_matched_as_strings(settings, trusted, origin, allowed):
    settings.CSRF_TRUSTED_ORIGINS = [trusted]
    settings.ALLOWED_HOSTS = []
    assert security.origin_allowed(origin) is allowed


@pytest.mark.parametrize(
    "meta,expected",
    [
        ({"HTTP_X_SOURCE_IP": "203.0.113.9", "HTTP_X_FORWARDED_FOR": "1.1.1.1"}, "203.0.113.9"),
        ({"HTTP_X_SOURCE_IP": "not-an-ip", "REMOTE_ADDR": "10.1.1.1"}, "10.1.1.1"),
        ({"HTTP_X_FORWARDED_FOR": "1.1.1.1", "REMOTE_ADDR": "10.1.1.1"}, "10.1.1.1"),
        ({"HTTP_X_SOURCE_IP": "2001:db8::1"}, "2001:db8::1"),
    ],
)
def test_source_ip_never_trusts_forwarded_for(meta, expected):
    request = RequestFactory().post("/", **meta)
    assert security.source_ip(request) == expected


@pytest.mark.parametrize(
    "body,expected",
    [
        ('{"action": "chat"}', "chat"),
        ('{"action": "nope"}', "$default"),
        ('{"action": 1}', "$default"),
        ("not json", "$default"),
        ("[1]", "$default"),
        ('{"other": "chat"}', "$default"),
    ],
)
def test_select_route(body, expected):
    assert protocol.select_route(body, "action", {"chat"}) == expected


def test_request_parameters_map_secret_and_source_ip():
    params = protocol.request_parameters("s3cr3t")
    assert params == {
        "integration.request.header.connectionId": "context.connectionId",
        "integration.request.header.X-Source-Ip": "context.identity.sourceIp",
        "integration.request.header.X-Gateway-Secret": "'s3cr3t'",
    }


def test_channel_name_check_narrows_and_still_refuses_non_strings():
    """Found by type-checking the whole package (mypy with django-stubs, issue #14)."""
    assert protocol.is_valid_channel_name("room-1")
    assert not protocol.is_valid_channel_name(None)
    assert not protocol.is_valid_channel_name(["room-1"])
