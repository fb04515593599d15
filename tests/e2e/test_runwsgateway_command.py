"""`manage.py runwsgateway` as a user runs it: a process, a port, Ctrl-C."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

pytestmark = pytest.mark.e2e


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def endpoint_in(db_path):
    with sqlite3.connect(db_path) as db:
        return db.execute(
            "select management_endpoint_url from django_aws_api_gateway_websockets_apigateway"
        ).fetchone()[0]


@pytest.fixture
def run_gateway(tmp_path):
    """Start `manage.py runwsgateway` on a fresh SQLite file; yields (port, db_path, process)."""
    db_path = tmp_path / "db.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "SQLITE_NAME": str(db_path),
        "PYTHONPATH": os.getcwd(),
    }
    env.pop("TEST_DB", None)  # this process and its gateway share one SQLite file
    manage = [sys.executable, "-m", "django"]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
    processes = []

    def run(target, *options):
        port = free_port()
        process = subprocess.Popen(
            [*manage, "runwsgateway", f"127.0.0.1:{port}", "--target", target, *options],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(process)
        banner = []
        for line in process.stdout:
            banner.append(line)
            if "Quit with CONTROL-C" in line:
                break
        process.banner = "".join(banner)
        assert f"ws://127.0.0.1:{port}/local" in process.banner
        wait_listening(port)
        return port, db_path, process

    run.env, run.db_path, run.manage = env, db_path, manage
    yield run
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_listening(port):
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def interrupt(process):
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=20)
    assert process.returncode == 0, out
    return out


def test_record_points_at_the_gateway_while_it_runs(run_gateway):
    port, db_path, process = run_gateway(f"http://127.0.0.1:{free_port()}/ws/")
    # The record (created on the fly: none existed) now sends through the gateway.
    assert endpoint_in(db_path) == f"http://127.0.0.1:{port}/local"
    # Django is not running behind it: the handshake fails like AWS's (502).
    with pytest.raises(InvalidStatus) as info:
        connect(f"ws://127.0.0.1:{port}/local", open_timeout=5)
    assert info.value.response.status_code == 502
    out = interrupt(process)
    assert "connect rejected" in out and "502" in out  # the log line of the event
    assert "Local gateway stopped" in out
    assert endpoint_in(db_path) == ""  # restored


def test_ctrl_c_closes_sockets_and_sends_their_disconnect(run_gateway, recorder):
    port, _, process = run_gateway(f"http://127.0.0.1:{recorder.server_port}/ws/")
    with ExitStack() as stack:
        clients = [stack.enter_context(connect(f"ws://127.0.0.1:{port}/local", open_timeout=5)) for _ in range(3)]
        connected = {h["connectionId"] for path, h in recorder.RequestHandlerClass.events if path == "/ws/connect"}
        assert len(connected) == 3
        out = interrupt(process)
        for client in clients:
            with pytest.raises(ConnectionClosed):
                client.recv(timeout=5)
            assert client.close_code == 1001
    disconnected = {h["connectionId"] for path, h in recorder.RequestHandlerClass.events if path == "/ws/disconnect"}
    assert disconnected == connected
    assert out.count("gateway shutting down") == 3
