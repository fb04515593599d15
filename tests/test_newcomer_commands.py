"""Issue #15, item 2: provisioning prints each step as it happens; the smoke test hints at --user;
the demo refuses a busy port before any banner."""

import os
import socket
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from .test_provisioning import AwsState, client, expected_sync, queue, record  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.django_db
def test_a_failed_run_has_already_printed_what_it_created(record, client):
    calls = expected_sync(record, AwsState())
    fail_at = [c.operation for c in calls].index("create_route") + 1  # the API and a route exist by then
    queue(client.stubber, calls, fail_at=fail_at)
    out = StringIO()
    with pytest.raises(
        CommandError, match="TooManyRequestsException.*the steps printed above ran in this order.*re-run"
    ):
        call_command("createApiGateway", pk=record.pk, stdout=out)
    printed = out.getvalue()
    assert "  create WEBSOCKET API 'chat'\n" in printed
    assert "create route" in printed


@pytest.mark.django_db
def test_smoke_test_without_user_on_a_token_view_says_to_pass_user(record, monkeypatch):
    from django_aws_api_gateway_websockets.management.commands import websocket_smoke_test

    class Refused(Exception):
        pass

    def connect(url, **kwargs):
        raise Refused("server rejected WebSocket connection: HTTP 401")

    monkeypatch.setattr("websockets.sync.client.connect", connect)
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("websocketSmokeTest", pk=record.pk, url="ws://127.0.0.1:9/dev", stdout=out)
    text = out.getvalue()
    assert "FAIL connect" in text and "HTTP 401" in text
    assert "hint: the view requires a token (USE_WS_TOKEN): pass --user <username>" in text
    assert websocket_smoke_test  # imported: the module the hint lives in


def test_demo_on_a_busy_port_exits_non_zero_before_any_banner(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {
            **os.environ,
            "DEMO_DJANGO_PORT": str(port),
            "DEMO_DB": str(tmp_path / "db.sqlite3"),
            "PYTHONPATH": str(ROOT),
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        result = subprocess.run(
            [sys.executable, str(ROOT / "example" / "run_demo.py")], env=env, capture_output=True, text=True, timeout=60
        )
    assert result.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "DEMO_DJANGO_PORT" in result.stderr
    assert "Demo running" not in result.stdout
    assert not (tmp_path / "db.sqlite3").exists()  # nothing migrated, nothing written


def test_make_demo_on_a_busy_port_fails_before_building_anything(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "DEMO_DJANGO_PORT": str(port)}
        result = subprocess.run(
            ["make", "-s", "demo", f"DEMO_VENV={tmp_path / 'venv'}", f"PYTHON={sys.executable}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert not (tmp_path / "venv").exists() and "Demo running" not in result.stdout
