"""A first run's output: provisioning prints each step as it happens; the smoke test hints at
--user; the demo refuses a busy port before any banner. From issue #15 (item 2), the newcomer's path."""

import os
import socket
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ..control_plane.test_provisioning import AwsState, client, expected_sync, queue, record  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[2]


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


def test_the_demo_prints_its_url_last_once_both_servers_listen(tmp_path):
    """Issue #23: "Demo running: open …" came before the servers' banners, which scrolled it away."""
    import signal
    import time

    def free():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    django_port, gateway_port = free(), free()
    env = {
        **os.environ,
        "DEMO_DJANGO_PORT": str(django_port),
        "DEMO_GATEWAY_PORT": str(gateway_port),
        "DEMO_DB": str(tmp_path / "db.sqlite3"),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    demo = subprocess.Popen(
        [sys.executable, str(ROOT / "example" / "run_demo.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 120
        for line in demo.stdout:
            lines.append(line)
            if "Demo running" in line or time.monotonic() > deadline:
                break
        # When the URL is printed, both servers answer.
        with socket.create_connection(("127.0.0.1", django_port), timeout=5):
            pass
        with socket.create_connection(("127.0.0.1", gateway_port), timeout=5):
            pass
    finally:
        demo.send_signal(signal.SIGINT)
        rest = demo.communicate(timeout=60)[0]
    text = "".join(lines)
    assert f"Demo running: open http://127.0.0.1:{django_port}/" in text, text + rest
    before = text[: text.index("Demo running")]
    assert f"ws://127.0.0.1:{gateway_port}/" in before and "Quit with CONTROL-C" in before  # the gateway's banner
    assert f"http://127.0.0.1:{django_port}/" in before and "Quit the server with CONTROL-C" in before  # runserver's
    assert "Demo running" not in rest


DEMO_TEMPLATES = ROOT / "example" / "chat" / "templates"


def test_the_demo_pages_draw_their_icons_instead_of_using_emoji():
    """Issue #23: the staff page's 🔒 rendered as a box on a system without an emoji font."""
    import re

    emoji = re.compile("[\U0001f000-\U0001faff\u2600-\u26ff\u2700-\u27bf\ufe0f]")
    found = {
        f"{path.relative_to(ROOT)}: {char!r}"
        for path in DEMO_TEMPLATES.rglob("*.html")
        for char in emoji.findall(path.read_text())
        if char != "\u26a0"  # ⚠ is in the common text fonts (DejaVu, Liberation)
    }
    assert found == set()


def test_the_demo_page_gives_the_command_that_works_with_make_demo():
    """Issue #23: `python example/manage.py sendNotification …` fails with the system Python."""
    page = (DEMO_TEMPLATES / "chat" / "room.html").read_text()
    command = ".venv-demo/bin/python example/manage.py sendNotification"
    assert command in page and command in (ROOT / "docs" / "demo.md").read_text()
    assert "<code>python example/manage.py" not in page
