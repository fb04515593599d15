"""`manage.py runwsgateway` never writes a deployed site's record, even when it is killed."""

import json
import signal
import sqlite3
import subprocess

import pytest
import requests
from websockets.sync.client import connect

from .test_runwsgateway_command import free_port, interrupt, run_gateway  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e

TABLE = "django_aws_api_gateway_websockets_apigateway"

CREATE_DEPLOYED = """
from django_aws_api_gateway_websockets.models import ApiGateway
ApiGateway.objects.create(
    api_name="prod", api_id="abc123defg", api_created=True, deployment_id="dep1", stage_name="local",
    api_endpoint="wss://abc123defg.execute-api.eu-west-1.amazonaws.com", region="eu-west-1",
    target_base_endpoint="https://www.example.com/ws/",
)
"""


def rows(db_path):
    with sqlite3.connect(db_path) as db:
        db.row_factory = sqlite3.Row
        return {r["api_name"]: dict(r) for r in db.execute(f"select * from {TABLE} order by id")}


def test_a_deployed_record_is_byte_identical_after_sigkill(run_gateway, recorder):  # noqa: F811
    subprocess.run([*run_gateway.manage, "shell", "-c", CREATE_DEPLOYED], env=run_gateway.env, check=True)
    before = rows(run_gateway.db_path)["prod"]
    port, db_path, process = run_gateway(f"http://127.0.0.1:{recorder.server_port}/ws/")
    during = rows(db_path)
    assert during["prod"] == before
    companion = during["prod-local"]
    assert companion["management_endpoint_url"] == f"http://127.0.0.1:{port}/local"
    assert companion["api_id"].startswith("local") and companion["region"] == "eu-west-1"
    # A session opened here belongs to the companion: Django sees its api id and its secret...
    with connect(f"ws://127.0.0.1:{port}/local", open_timeout=5) as client:
        ((path, headers),) = [e for e in recorder.RequestHandlerClass.events if e[0] == "/ws/connect"]
        assert headers["X-Amzn-Apigateway-Api-Id"] == companion["api_id"]
        assert headers["X-Gateway-Secret"] == companion["integration_secret"]
        # ...and a send through the companion's endpoint reaches the socket.
        url = f"{companion['management_endpoint_url']}/@connections/{headers['connectionId']}"
        assert requests.post(url, data=json.dumps({"hello": 1}), timeout=5).status_code == 200
        assert json.loads(client.recv(timeout=5)) == {"hello": 1}
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    assert rows(db_path)["prod"] == before


def test_the_companion_is_reused_and_the_banner_says_so(run_gateway):  # noqa: F811
    subprocess.run([*run_gateway.manage, "shell", "-c", CREATE_DEPLOYED], env=run_gateway.env, check=True)
    before = rows(run_gateway.db_path)["prod"]
    companions = []
    for _ in range(2):
        port, db_path, process = run_gateway(f"http://127.0.0.1:{free_port()}/ws/", "--api", "prod")
        companions.append(rows(db_path)["prod-local"])
        assert "left untouched" in process.banner and "prod-local" in process.banner
        interrupt(process)
    assert companions[0]["id"] == companions[1]["id"] and companions[0]["api_id"] == companions[1]["api_id"]
    after = rows(db_path)
    assert after["prod"] == before and after["prod-local"]["management_endpoint_url"] == ""


def test_a_busy_port_is_an_error_before_the_banner(run_gateway, tmp_path):  # noqa: F811
    port, _, process = run_gateway(f"http://127.0.0.1:{free_port()}/ws/")
    second = subprocess.run(
        [*run_gateway.manage, "runwsgateway", f"127.0.0.1:{port}"],
        env=run_gateway.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0
    assert "Cannot listen" in second.stderr
    assert "Quit with CONTROL-C" not in second.stdout and "Local API Gateway" not in second.stdout
    # The first one still owns the record's endpoint.
    (record,) = rows(run_gateway.db_path).values()
    assert record["management_endpoint_url"] == f"http://127.0.0.1:{port}/local"
    interrupt(process)


def test_listening_on_every_interface_warns_on_stderr(run_gateway):  # noqa: F811
    port = free_port()
    process = subprocess.Popen(
        [*run_gateway.manage, "runwsgateway", f"0.0.0.0:{port}", "--target", "http://127.0.0.1:9/ws/"],
        env=run_gateway.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stdout:
            if "Quit with CONTROL-C" in line:
                break
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    assert "NO authentication" in err and "0.0.0.0" in err
