"""websocket_smoke_test against the local gateway: every automatable step of the deployment smoke test."""

import re
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_aws_api_gateway_websockets.models import CleanupRun, WebSocketSession

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

STEPS = [
    "token",
    "connect",
    "session row created",
    "message handled",
    "server -> client message",
    "channel broadcast",
    "disconnect marked",
    "cleanup",
]


def smoke(*args):
    """Run the command; (its step lines, its whole output, the CommandError or None)."""
    out = StringIO()
    try:
        call_command("websocket_smoke_test", *args, stdout=out)
        error = None
    except CommandError as exc:
        error = exc
    text = out.getvalue()
    return [line for line in text.splitlines() if line.startswith(("PASS", "FAIL", "SKIP"))], text, error


def test_smoke_test_passes_every_step(gateway_thread, e2e_gateway, user):
    lines, text, error = smoke(f"--pk={e2e_gateway.pk}", f"--user={user.username}")
    assert error is None, text
    assert [re.sub(r" \[\d+ ms\].*", "", line) for line in lines] == [f"PASS {step}" for step in STEPS]
    assert "PASS connect [" in text and gateway_thread.ws_url in text  # derived from the record
    assert not WebSocketSession.objects.exists()  # cleaned up after itself
    assert CleanupRun.objects.filter(command="cleanup_websocket_tokens").exists()


def test_explicit_url(gateway_thread, e2e_gateway, user):
    lines, text, error = smoke(f"--pk={e2e_gateway.pk}", f"--user={user.username}", f"--url={gateway_thread.ws_url}")
    assert error is None and len(lines) == len(STEPS), text


def test_smoke_test_fails_clearly_without_a_user(gateway_thread, e2e_gateway):
    lines, text, error = smoke(f"--pk={e2e_gateway.pk}", "--timeout=3")
    assert str(error) == "Smoke test failed."
    assert lines[0].startswith("PASS token") and "no --user" in lines[0]
    assert lines[1].startswith("FAIL connect: InvalidStatus") and "401" in lines[1]
    assert lines[2:] == [f"SKIP {step}" for step in STEPS[2:]]


def test_unreachable_endpoint_fails_at_connect(gateway, user):
    lines, _text, error = smoke(
        f"--pk={gateway.pk}", f"--user={user.username}", "--url=ws://127.0.0.1:9/production", "--timeout=2"
    )
    assert error is not None
    assert lines[1].startswith("FAIL connect: ConnectionRefusedError")


def test_unknown_user_fails_the_token_step(gateway):
    lines, _text, error = smoke(f"--pk={gateway.pk}", "--user=nobody", "--url=ws://127.0.0.1:9/production")
    assert error is not None and lines[0] == "FAIL token: no user 'nobody'"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--pk=999999"], "No ApiGateway record with pk 999999."),
        (["--timeout=0"], "--timeout must be more than 0 seconds."),
    ],
)
def test_bad_arguments(gateway, args, message):
    if not any(a.startswith("--pk") for a in args):
        args = [f"--pk={gateway.pk}", *args]
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("websocketSmokeTest", *args, stdout=StringIO())


def test_a_record_not_yet_deployed_needs_a_url(gateway):
    with pytest.raises(CommandError, match=r"no WebSocket URL yet: pass --url"):
        call_command("websocketSmokeTest", f"--pk={gateway.pk}", stdout=StringIO())


def test_missing_websockets_library_is_a_clear_error(gateway, monkeypatch):
    monkeypatch.setitem(sys.modules, "websockets.sync.client", None)  # import fails as if not installed
    with pytest.raises(CommandError, match=r'pip install "django-aws-api-gateway-websockets\[local\]"'):
        call_command("websocketSmokeTest", f"--pk={gateway.pk}", stdout=StringIO())
