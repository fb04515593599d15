"""The local origin trap (check W080, the gateway's refusal log line, the refusal view). From
issue #15, the newcomer's path."""

import json

import pytest
from django.core.cache import cache
from django.test import override_settings
from multidict import CIMultiDict

from django_aws_api_gateway_websockets import checks
from django_aws_api_gateway_websockets.gateway.config import GatewayConfig
from django_aws_api_gateway_websockets.gateway.integration import IntegrationResult
from django_aws_api_gateway_websockets.gateway.server import refusal_reason


def w080():
    return [m for m in checks.check_local_origin(None) if m.id == "aws_websockets.W080"]


@override_settings(DEBUG=True, CSRF_TRUSTED_ORIGINS=[])
def test_debug_project_without_its_local_origin_is_told_what_to_add():
    [warning] = w080()
    assert 'CSRF_TRUSTED_ORIGINS = ["http://127.0.0.1:8000", "http://localhost:8000"]' in warning.hint
    assert "Origin not allowed" in warning.msg


@pytest.mark.parametrize(
    "trusted",
    [
        ["http://127.0.0.1:8000", "http://localhost:8000"],
        ["http://localhost:9000", "http://127.0.0.1:9000"],
        ["http://[::1]:8000", "http://127.0.0.1:8000", "http://localhost:8000"],
    ],
)
def test_a_listed_local_origin_with_its_twin_silences_it(trusted):
    with override_settings(DEBUG=True, CSRF_TRUSTED_ORIGINS=trusted):
        assert w080() == []


@pytest.mark.parametrize(
    "trusted,missing",
    [
        (["http://127.0.0.1:8000"], "http://localhost:8000"),
        (["http://localhost:9000"], "http://127.0.0.1:9000"),
        (["http://localhost:8000", "http://127.0.0.1:8000", "http://127.0.0.1:8080"], "http://localhost:8080"),
    ],
)
def test_one_name_of_the_local_server_without_the_other_is_told_to_add_it(trusted, missing):
    """Issue #23: a page opened at http://localhost:8000 was refused though 127.0.0.1:8000 was trusted."""
    with override_settings(DEBUG=True, CSRF_TRUSTED_ORIGINS=trusted):
        [warning] = w080()
    assert f'does not list "{missing}": a page opened at {missing}' in warning.msg
    assert (
        warning.hint
        == f'Add "{missing}" to CSRF_TRUSTED_ORIGINS: 127.0.0.1 and localhost are two origins to a browser.'
    )


@override_settings(DEBUG=False, CSRF_TRUSTED_ORIGINS=[])
def test_not_in_production():
    assert w080() == []


@pytest.mark.django_db  # Django 6 runs the database checks in `check` too
@override_settings(DEBUG=True, CSRF_TRUSTED_ORIGINS=["https://www.example.com"])
def test_manage_py_check_reports_it(capsys):
    from django.core.management import call_command

    call_command("check")
    assert "aws_websockets.W080" in capsys.readouterr().err


@pytest.mark.django_db
def test_djangos_log_names_the_origin_it_refused(caplog):
    """Issue #23: "Origin not allowed." alone left the developer guessing which origin to add."""
    from django_aws_api_gateway_websockets.testing import WebSocketTestClient

    with (
        caplog.at_level("WARNING", logger="django_aws_api_gateway_websockets.views"),
        WebSocketTestClient("/ws/", origin="http://localhost:8000") as ws,
    ):
        response = ws.connect()
    assert response.status_code == 403
    assert response.json() == {"error": "Origin not allowed."}  # the answer is unchanged
    [line] = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert line == "WebSocket connect rejected (403): Origin not allowed. (Origin 'http://localhost:8000')"


def _config():
    return GatewayConfig(
        api_id="abc", target_base_endpoint="http://127.0.0.1:8000/ws/", stage="dev", secret="s3cr3t-value-long"
    )


def test_gateway_logs_the_json_reason():
    result = IntegrationResult(
        403, b'{"error": "Origin not allowed."}', CIMultiDict({"Content-Type": "application/json"})
    )
    assert refusal_reason(result, _config()) == ': "Origin not allowed."'


def test_gateway_log_never_carries_secrets_or_a_debug_page():
    body = b"<html><head><title>KeyError at /ws/connect</title></head><body>SECRET_KEY s3cr3t-value-long</body></html>"
    result = IntegrationResult(500, body, CIMultiDict({"Content-Type": "text/html; charset=utf-8"}))
    assert refusal_reason(result, _config()) == ': "KeyError at /ws/connect"'
    text = IntegrationResult(403, b"token tok123456789 secret s3cr3t-value-long " + b"x" * 500, CIMultiDict())
    reason = refusal_reason(text, _config(), "ws_token=tok123456789&channel=a")
    assert "s3cr3t-value-long" not in reason and "tok123456789" not in reason
    assert len(reason) <= 205 and reason.endswith('…"')
    assert refusal_reason(IntegrationResult(403, b""), _config()) == ""


@pytest.mark.django_db
def test_refusal_view_tells_the_browser_why(client, django_user_model, rf):
    from django_aws_api_gateway_websockets import signals
    from django_aws_api_gateway_websockets.refusals import WebSocketRefusalView, record_refusal

    cache.clear()
    user = django_user_model.objects.create_user("newcomer")
    request = rf.post("/ws/connect?ws_token=raw-token-123&channel=a", HTTP_ORIGIN="http://127.0.0.1:8000")
    record_refusal(sender=None, request=request, reason=signals.REASON_ORIGIN)
    record_refusal(sender=None, request=rf.post("/ws/connect?ws_token=other-token"), reason=signals.REASON_SECRET)

    def ask(token, logged_in=True):
        post = rf.post("/refusal/", json.dumps({"token": token}), content_type="application/json")
        post.user = user if logged_in else __import__("django.contrib.auth.models").contrib.auth.models.AnonymousUser()
        post._dont_enforce_csrf_checks = True
        return WebSocketRefusalView.as_view()(post)

    answer = json.loads(ask("raw-token-123").content)
    assert answer == {
        "refused": True,
        "status": 403,
        "code": "origin",
        "reason": 'Origin not allowed: add "http://127.0.0.1:8000" to CSRF_TRUSTED_ORIGINS.',
    }
    assert json.loads(ask("other-token").content) == {"refused": False}  # not the gateway: not recorded
    assert json.loads(ask("never-seen").content) == {"refused": False}
    assert ask("raw-token-123", logged_in=False).status_code == 403
    assert ask("").status_code == 400


@pytest.mark.django_db
def test_a_script_gets_a_token_as_the_readme_says(django_user_model):
    """docs/browser-client.md, Clients other than a browser: POST with the session and the CSRF token."""
    from django.test import Client
    from django.urls import reverse

    from django_aws_api_gateway_websockets.conf import get_setting
    from django_aws_api_gateway_websockets.models import WebSocketToken

    url = reverse("websocket_token")
    http = Client(enforce_csrf_checks=True)
    assert http.post(url).status_code == 401  # not logged in
    user = django_user_model.objects.create_user("alice", password="pw")
    http.force_login(user)
    assert http.post(url).status_code == 403  # no CSRF token
    http.get("/")  # any page; the csrftoken cookie is then set by get_token below
    from django.middleware.csrf import _get_new_csrf_string, _mask_cipher_secret

    secret = _get_new_csrf_string()
    http.cookies["csrftoken"] = secret
    answer = http.post(url, HTTP_X_CSRFTOKEN=_mask_cipher_secret(secret))
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"token", "expires_in"} and body["expires_in"] == get_setting("token_expiry_seconds")
    assert len(body["token"]) == 43
    assert WebSocketToken.objects.filter(user=user).count() == 1
