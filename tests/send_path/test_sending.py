"""Sending through the Management API (docs/sending.md) against a real local HTTP server."""

import datetime
import decimal
import time
import uuid

import pytest

from django_aws_api_gateway_websockets import signals
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession
from django_aws_api_gateway_websockets.sending import MessageTooLarge, encode_message

from ..management_server import ManagementServer

pytestmark = pytest.mark.django_db


BACKENDS = {
    "aiohttp": "django_aws_api_gateway_websockets.backends.AiohttpBackend",
    "boto3": "django_aws_api_gateway_websockets.backends.Boto3Backend",
}


@pytest.fixture(params=[*BACKENDS, "legacy-threads"], autouse=True)
def backend_setting(request, settings):
    """Every test runs with every backend (and the deprecated ``send_transport`` alias)."""
    if request.param == "legacy-threads":
        settings.WEBSOCKETS = {"send_transport": "threads"}
    else:
        settings.WEBSOCKETS = {"send_backend": BACKENDS[request.param]}
    return request.param


@pytest.fixture
def server():
    with ManagementServer() as server:
        yield server


@pytest.fixture
def local_gateway(server):
    return ApiGateway.objects.create(api_name="local", api_id="local1", management_endpoint_url=server.url)


def rows(gateway, *ids, channel="room", connected=True, user=None):
    return [
        WebSocketSession.objects.create(
            connection_id=cid, channel_name=channel, api_gateway=gateway, connected=connected, user=user
        )
        for cid in ids
    ]


def test_queryset_send_reaches_connected_rows_only(server, local_gateway):
    rows(local_gateway, "a-1", "a-2")
    rows(local_gateway, "old-1", connected=False)
    result = WebSocketSession.objects.in_channel("room").send_message({"n": 1})
    assert sorted(result.delivered) == ["a-1", "a-2"]
    assert dict(server.received) == {"a-1": [{"n": 1}], "a-2": [{"n": 1}]}


def test_gone_marks_disconnected_and_others_still_delivered(server, local_gateway):
    seen = []
    receiver = lambda sender, connection_ids, **kw: seen.extend(connection_ids)  # noqa: E731
    signals.connection_gone.connect(receiver)
    try:
        rows(local_gateway, "gone-1", "ok-1", "gone-2", "ok-2")
        result = WebSocketSession.objects.all().send_message("hi")
    finally:
        signals.connection_gone.disconnect(receiver)
    assert sorted(result.delivered) == ["ok-1", "ok-2"]
    assert sorted(result.gone) == ["gone-1", "gone-2"]
    assert result.ok
    assert set(WebSocketSession.objects.filter(connected=False).values_list("connection_id", flat=True)) == {
        "gone-1",
        "gone-2",
    }
    assert sorted(seen) == ["gone-1", "gone-2"]


def test_other_errors_are_reported_and_never_abort_the_rest(server, local_gateway):
    failures = []
    receiver = lambda sender, connection_id, error, **kw: failures.append((connection_id, error))  # noqa: E731
    signals.send_failed.connect(receiver)
    try:
        rows(local_gateway, "forbidden-1", "ok-1", "ok-2")
        result = WebSocketSession.objects.send_message({"x": 1})
    finally:
        signals.send_failed.disconnect(receiver)
    assert sorted(result.delivered) == ["ok-1", "ok-2"]
    assert result.failed == {"forbidden-1": "ForbiddenException"}
    assert not result.ok
    assert failures == [("forbidden-1", "ForbiddenException")]
    assert WebSocketSession.objects.get(connection_id="forbidden-1").connected is True


def test_throttled_calls_are_retried(server, local_gateway, settings):
    settings.WEBSOCKETS = {**settings.WEBSOCKETS, "send_retry_base_delay": 0.001}
    rows(local_gateway, "throttle2-a", "throttle9-b")
    result = WebSocketSession.objects.send_message({"x": 1})
    assert result.delivered == ["throttle2-a"]
    assert server.calls["throttle2-a"] == 3
    assert result.throttled_retries == 2 + 5
    # Gave up after send_max_retries (5) retries.
    assert result.failed == {"throttle9-b": "LimitExceededException"}
    assert server.calls["throttle9-b"] == 6


def test_calls_per_second_ceiling_holds(server, local_gateway, settings):
    settings.WEBSOCKETS = {**settings.WEBSOCKETS, "send_max_calls_per_second": 100}
    rows(local_gateway, *(f"c{i}" for i in range(30)))
    start = time.perf_counter()
    result = WebSocketSession.objects.send_message({"x": 1})
    elapsed = time.perf_counter() - start
    assert len(result.delivered) == 30
    # 30 calls at 100/s: the last may start 29 intervals of 10 ms after the first.
    assert elapsed >= 0.28


def test_backoff_is_jittered_and_grows():
    from django_aws_api_gateway_websockets.backends import RetryPolicy

    backoff = RetryPolicy(retries=5, base_delay=0.05).backoff
    delays = [[backoff(attempt) for _ in range(200)] for attempt in range(4)]
    for attempt, values in enumerate(delays):
        assert all(0 <= d <= 0.05 * 2**attempt for d in values)
        assert len(set(values)) > 150  # spread out, not one fixed delay
    assert max(delays[3]) > 0.05 * 2**2  # later attempts wait longer


def test_each_row_uses_its_own_gateway_endpoint(local_gateway):
    with ManagementServer() as other:
        second = ApiGateway.objects.create(api_name="second", api_id="local2", management_endpoint_url=other.url)
        rows(local_gateway, "one")
        rows(second, "two")
        result = WebSocketSession.objects.send_message({"x": 1})
        assert sorted(result.delivered) == ["one", "two"]
        assert list(other.received) == ["two"]


def test_instance_send_and_helpers(server, local_gateway, user, other_user):
    mine = rows(local_gateway, "u1", user=user)[0]
    rows(local_gateway, "u2", user=other_user)
    assert mine.send_message({"hello": "you"}).delivered == ["u1"]
    assert WebSocketSession.objects.for_user(other_user).connected().send_message({}).delivered == ["u2"]
    assert dict(server.received) == {"u1": [{"hello": "you"}], "u2": [{}]}


def test_json_encoding_handles_django_types(server, local_gateway):
    rows(local_gateway, "c1")
    stamp = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    uid = uuid.UUID(int=1)
    WebSocketSession.objects.send_message({"at": stamp, "price": decimal.Decimal("1.50"), "id": uid})
    assert server.received["c1"] == [{"at": "2026-01-02T03:04:05Z", "price": "1.50", "id": str(uid)}]


def test_oversized_payload_raises_before_any_http_call(server, local_gateway):
    rows(local_gateway, "c1")
    with pytest.raises(MessageTooLarge, match="at most 1048576 bytes"):
        WebSocketSession.objects.send_message({"x": "a" * 1048576})
    assert server.calls == {}
    assert len(encode_message("a" * 1048576)) == 1048576


def test_close_deletes_connection(server, local_gateway):
    open_row, gone_row = rows(local_gateway, "c1", "gone-9")
    assert open_row.close() is True
    assert server.deleted == ["c1"]
    assert gone_row.close() is False
    assert WebSocketSession.objects.get(connection_id="gone-9").connected is False


def test_row_without_gateway_is_reported_failed(server, local_gateway):
    rows(local_gateway, "c1")
    rows(None, "orphan")
    result = WebSocketSession.objects.send_message({})
    assert result.delivered == ["c1"]
    assert result.failed == {"orphan": "NoGateway"}


def test_empty_queryset(local_gateway):
    result = WebSocketSession.objects.none().send_message({})
    assert len(result) == 0 and result.ok


def test_derived_endpoint_uses_record_region(db):
    gateway = ApiGateway(api_name="x", api_id="abc", region="ap-south-1", stage_name="prod")
    assert gateway.management_endpoint == "https://abc.execute-api.ap-south-1.amazonaws.com/prod"
    gateway.region = ""
    assert gateway.management_endpoint == "https://abc.execute-api.eu-west-1.amazonaws.com/prod"


def test_aiohttp_backend_signs_aws_endpoints_with_sigv4():
    from django_aws_api_gateway_websockets.backends import AiohttpBackend, Endpoint

    endpoint = Endpoint("https://abc.execute-api.eu-west-1.amazonaws.com/prod", "eu-west-1")
    assert endpoint.origin == ("https", "abc.execute-api.eu-west-1.amazonaws.com", 443)
    assert endpoint.path("a/b=") == "/prod/@connections/a%2Fb%3D"
    assert endpoint.signed
    signer = AiohttpBackend._signer("POST", endpoint, b"{}")
    headers = signer.headers(endpoint.path("x"))
    # The credentials botocore resolved (settings here), through its public credential API.
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/eu-west-1/execute-api/aws4_request" in headers["Authorization"]
    assert not Endpoint("http://127.0.0.1:8001/local", "eu-west-1").signed


def _botocore_signature(credentials, url, payload, when):
    """What botocore's own SigV4 signer puts on ``POST url`` at ``when``."""
    from unittest import mock

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(method="POST", url=url, data=payload)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        SigV4Auth(credentials, "execute-api", "eu-west-1").add_auth(request)
    return dict(request.headers)


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEJr//////////wEaDH+session/token=="])
@pytest.mark.parametrize(
    "base, connection_id",
    [
        ("https://abc.execute-api.eu-west-1.amazonaws.com/prod", "L0SM9cOFvHcCIhw="),
        ("https://ws.example.com:8443/live", "a+b/c=d~e.f"),
        ("https://WS.Example.com", "Zz-_09"),
    ],
)
def test_sigv4_signer_matches_botocore(token, base, connection_id):
    from urllib.parse import quote, urlsplit

    from botocore.credentials import Credentials

    from django_aws_api_gateway_websockets.backends.sigv4 import SigV4Signer

    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    payload = '{"type":"chat","text":"héllo"}'.encode()
    path = f"{urlsplit(base).path}/@connections/{quote(connection_id, safe='')}"
    parts = urlsplit(base)
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    signer = SigV4Signer(credentials.get_frozen_credentials(), "eu-west-1", host, payload)
    # Across a day boundary too: the cached signing key must follow the date.
    for when in (
        datetime.datetime(2026, 3, 1, 23, 59, 59, 500000),
        datetime.datetime(2026, 3, 2, 0, 0, 1),
    ):
        ours = signer.headers(path, now=when.replace(tzinfo=datetime.UTC).timestamp())
        assert ours == _botocore_signature(
            credentials, f"{base}{path[len(parts.path) :] if parts.path else path}", payload, when
        )


def test_sigv4_signing_is_cheap():
    """Signing must not cost more than the HTTP request itself (the native client: ~65 µs)."""
    import time

    from botocore.credentials import Credentials

    from django_aws_api_gateway_websockets.backends.sigv4 import SigV4Signer

    signer = SigV4Signer(Credentials("AKID", "secret").get_frozen_credentials(), "eu-west-1", "h.example.com", b"{}")
    start = time.process_time()
    for i in range(2000):
        signer.headers(f"/prod/@connections/c{i}")
    per_call = (time.process_time() - start) / 2000
    assert per_call < 60e-6, f"{per_call * 1e6:.0f} µs per signature"


def test_missing_credentials_fail_each_connection_not_the_send(local_gateway, settings, monkeypatch, tmp_path):
    # A server with no AWS credentials anywhere: no settings, environment, files or instance role.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings.AWS_ACCESS_KEY_ID = settings.AWS_SECRET_ACCESS_KEY = None  # and the cached clients, on both ends
    # An https endpoint (signed), on a closed local port: nothing may leave the machine.
    aws_gateway = ApiGateway.objects.create(
        api_name="aws", api_id="awsapi0001", management_endpoint_url="https://127.0.0.1:9/prod"
    )
    rows(aws_gateway, "far-1")
    rows(local_gateway, "near-1")
    result = WebSocketSession.objects.send_message({"x": 1})
    assert result.delivered == ["near-1"]
    assert result.failed == {"far-1": "NoCredentialsError"}


def test_unknown_transport_setting_is_a_clear_error(local_gateway, settings):
    settings.WEBSOCKETS = {"send_transport": "carrier-pigeon"}
    rows(local_gateway, "c1")
    with pytest.raises(ValueError, match="send_transport"):
        WebSocketSession.objects.send_message({})


def test_deprecated_send_transport_is_a_check_warning(settings):
    from django.core import checks

    settings.WEBSOCKETS = {"send_transport": "native"}
    found = [m for m in checks.run_checks() if m.id == "aws_websockets.W070"]
    assert len(found) == 1 and "AiohttpBackend" in found[0].msg
    settings.WEBSOCKETS = {"send_backend": "django_aws_api_gateway_websockets.backends.Boto3Backend"}
    assert not [m for m in checks.run_checks() if m.id in ("aws_websockets.W070", "aws_websockets.E071")]


def test_a_send_backend_that_does_not_import_is_a_check_error(settings):
    from django.core import checks

    settings.WEBSOCKETS = {"send_backend": "myproject.nowhere.Backend"}
    assert [m.id for m in checks.run_checks() if m.id == "aws_websockets.E071"] == ["aws_websockets.E071"]


def test_uncertain_calls_are_listed_and_never_resent(server, local_gateway, settings):
    """A 500 may have been applied: reported as uncertain, the server saw it once."""
    from django_aws_api_gateway_websockets.testing import ManagementAPICapture

    with ManagementAPICapture() as capture:
        gateway = local_gateway
        rows(gateway, "ok-1", "maybe-1")
        capture.fail("maybe-1", "Uncertain:ServerDisconnectedError")
        result = WebSocketSession.objects.send_message("hi")
    assert result.delivered == ["ok-1"]
    assert result.uncertain == ["maybe-1"]
