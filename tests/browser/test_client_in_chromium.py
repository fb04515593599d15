"""The shipped client's own promises, with short timers, in Chromium against the demo servers.

Each test builds a second WebSocketClient in a logged-in demo page (whose own client stays in
the lobby and shows what the server broadcasts).
"""

import pytest

from .conftest import free_port

pytestmark = pytest.mark.browser

# Runs in the page: import the module and build a client from the page's config plus `options`.
RUN_CLIENT = """async ([options, script]) => {
  const { WebSocketClient } = await import("/static/django_aws_api_gateway_websockets/websocket-client.js");
  const config = JSON.parse(document.getElementById("ws-config").textContent);
  const client = new WebSocketClient({ ...config, ...options });
  const events = [];
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  for (const type of ["open", "close", "reconnecting", "unauthorized", "dropped", "pong", "chat"]) {
    client.addEventListener(type, (event) => events.push({ type, detail: event.detail, at: performance.now() }));
  }
  const returned = await (new Function("client", "sleep", "return (async () => {" + script + "})()"))(client, sleep);
  return { events, returned };
}"""


def run_client(page, options, script):
    return page.evaluate(RUN_CLIENT, [options, script])


def types(events):
    return [event["type"] for event in events]


def test_heartbeat_and_lifetime_reconnect_with_a_fresh_token(demo, pages):
    page = pages("demo", demo)
    used_before = demo.used_tokens()
    result = run_client(
        page,
        {"heartbeatMs": 250, "maxLifetimeMs": 2000},
        """
        client.connect();
        await sleep(3000);
        client.close();
    """,
    )
    seen = types(result["events"])
    first_close = seen.index("close")
    # Heartbeats ({"handler": "ping"}) were answered by the view's built-in ping handler.
    assert seen[:first_close].count("pong") >= 4
    # The lifetime cap closed the socket and the client came straight back on a new token.
    assert seen[first_close + 1] == "reconnecting" and result["events"][first_close + 1]["detail"]["delay"] == 0
    assert seen.count("open") == 2
    assert demo.used_tokens() == used_before + 2


def test_queue_is_bounded_and_flushed_on_open(demo, pages):
    page = pages("demo", demo)
    result = run_client(
        page,
        {"queueLimit": 2},
        """
        const accepted = ["one", "two", "three"].map((text) => client.send({ handler: "send_chat", room: "lobby", text }));
        client.connect();
        await new Promise((resolve) => client.addEventListener("open", resolve));
        await sleep(1000);
        client.close();
        return accepted;
    """,
    )
    assert result["returned"] == [True, True, False]
    dropped = [event for event in result["events"] if event["type"] == "dropped"]
    assert [event["detail"] for event in dropped] == [{"frame": '{"handler":"send_chat","room":"lobby","text":"one"}'}]
    page.wait_for_selector("#log p.chat >> nth=1")
    page.wait_for_timeout(300)
    # Sent in order, but API Gateway (and the local gateway) may call Django concurrently.
    received = sorted(p.inner_text() for p in page.locator("#log p.chat").all())
    assert received == ["[lobby] demo: three", "[lobby] demo: two"]


def test_backoff_grows_with_jitter_up_to_the_cap_and_close_stops_for_good(demo, pages):
    page = pages("demo", demo)
    nobody_listens = f"ws://127.0.0.1:{free_port()}/local"
    result = run_client(
        page,
        {"url": nobody_listens, "tokenUrl": "", "backoffBaseMs": 50, "backoffCapMs": 400},
        """
        client.connect();
        await sleep(3000);
        client.close();
        const stoppedAt = performance.now();
        await sleep(1500);
        return stoppedAt;
    """,
    )
    delays = [event["detail"]["delay"] for event in result["events"] if event["type"] == "reconnecting"]
    assert len(delays) >= 6
    for attempt, delay in enumerate(delays):
        ceiling = min(400, 50 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling, (attempt, delay)
    assert len(set(delays[4:])) > 1, "capped delays still carry jitter"
    # After close(): no more attempts.
    assert [event["type"] for event in result["events"] if event["at"] > result["returned"]] == []


def test_close_during_the_token_request_opens_no_socket(demo, pages):
    page = pages("demo", demo)
    used_before = demo.used_tokens()
    result = run_client(
        page,
        {},
        """
        client.connect();   // the token request is now in flight
        client.close();
        await sleep(1500);
        return client.socket === null;
    """,
    )
    assert result["returned"] is True
    assert "open" not in types(result["events"])
    assert demo.used_tokens() == used_before
