"""Django on a live server + the local gateway in-process + real WebSocket clients."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.core.servers.basehttp import ThreadedWSGIServer

from django_aws_api_gateway_websockets.gateway import GatewayConfig, GatewayThread
from django_aws_api_gateway_websockets.models import ApiGateway

ORIGIN = "https://www.example.com"

# Django's development server listens with a backlog of 10: a client sending a large message's
# 33 parts back to back (API Gateway calls the integration for each at once) would meet
# connection resets, which a production server's backlog does not give.
ThreadedWSGIServer.request_queue_size = 256


@pytest.fixture
def e2e_gateway(transactional_db, live_server):
    return ApiGateway.objects.create(
        api_name="e2e",
        api_id="e2eapi0001",
        stage_name="local",
        region="us-east-1",
        target_base_endpoint=f"{live_server.url}/ws/",
    )


@pytest.fixture
def start_gateway(e2e_gateway):
    """Start a local gateway for the e2e record (options as GatewayConfig fields)."""
    running = []

    def start(**overrides):
        thread = GatewayThread(GatewayConfig.from_record(e2e_gateway, **overrides))
        thread.start()
        running.append(thread)
        ApiGateway.objects.filter(pk=e2e_gateway.pk).update(management_endpoint_url=thread.management_url)
        e2e_gateway.refresh_from_db()
        return thread

    yield start
    for thread in running:
        thread.stop()


@pytest.fixture
def gateway_thread(start_gateway):
    return start_gateway()


@pytest.fixture
def browser_login(live_server, client):
    """A logged-in browser: its cookies, and a function fetching a token like the JS client."""

    def login(user):
        client.force_login(user)
        http = requests.Session()
        http.cookies.set("sessionid", client.cookies["sessionid"].value)
        http.get(f"{live_server.url}/admin/login/")  # the csrftoken cookie

        def fetch_token():
            response = http.post(
                f"{live_server.url}/api/ws-token/",
                headers={"X-CSRFToken": http.cookies["csrftoken"], "Referer": live_server.url + "/"},
            )
            response.raise_for_status()
            return response.json()["token"]

        cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
        return cookie, fetch_token

    return login


class _Recorder(BaseHTTPRequestHandler):
    """A backend that accepts every event and remembers ``(path, headers)``."""

    events = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.events.append((self.path.split("?")[0], self.headers))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    """A Django stand-in on a free port; its events: ``recorder.RequestHandlerClass.events``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("R", (_Recorder,), {"events": []}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()
