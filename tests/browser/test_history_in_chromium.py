"""The shipped client's resume (docs/history.md), in Chromium against the demo servers: a sender
broadcasts numbered messages with send_to_channel while the client's socket is dropped every
0.8 s; the application sees every message, in order, exactly once."""

import subprocess

import pytest

from .conftest import MANAGE

pytestmark = pytest.mark.browser

COUNT = 60

SENDER = f"""
import time
from django_aws_api_gateway_websockets.history import send_to_channel
for n in range({COUNT}):
    send_to_channel("lobby", {{"type": "note", "n": n}})
    time.sleep(0.05)
"""

START = """async () => {
  const { WebSocketClient } = await import("/static/django_aws_api_gateway_websockets/websocket-client.js");
  const config = JSON.parse(document.getElementById("ws-config").textContent);
  const client = new WebSocketClient({ ...config, channel: "lobby", maxLifetimeMs: 800, backoffBaseMs: 50 });
  window.resumeTest = { client, notes: [], opens: 0, gaps: [] };
  client.addEventListener("note", (event) => window.resumeTest.notes.push(event.detail.n));
  client.addEventListener("gap", (event) => window.resumeTest.gaps.push(event.detail));
  client.addEventListener("open", () => { window.resumeTest.opens += 1; });
  client.connect();
  await new Promise((resolve) => client.addEventListener("open", resolve, { once: true }));
}"""

WAIT = """async (count) => {
  const deadline = performance.now() + 25000;
  while (window.resumeTest.notes.length < count && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await new Promise((resolve) => setTimeout(resolve, 500));  // a late duplicate would show now
  window.resumeTest.client.close();
  const { notes, opens, gaps } = window.resumeTest;
  return { notes, opens, gaps };
}"""


def test_client_resumes_every_numbered_message_in_order_across_drops(demo, pages):
    page = pages("demo", demo)
    page.evaluate(START)
    sender = subprocess.Popen([*MANAGE, "shell", "-c", SENDER], env=demo.env)
    try:
        result = page.evaluate(WAIT, COUNT)
        assert sender.wait(timeout=60) == 0
    finally:
        if sender.poll() is None:
            sender.kill()
    assert result["gaps"] == []
    assert result["opens"] >= 3, result  # the socket really was dropped, several times
    assert result["notes"] == list(range(COUNT))


# --- the position survives a page reload (sessionStorage) ------------------------------------

RELOAD_CHANNEL = "reloadtest"

SEND = """
from django_aws_api_gateway_websockets.history import send_to_channel
for n in range({start}, {stop}):
    send_to_channel("{channel}", {{"type": "note", "n": n}})
"""

# A client of its own on RELOAD_CHANNEL (the demo page's client stays on its room); resolves
# once the server said where the stream stands (or replayed what the page missed).
FOLLOW = """async (channel) => {
  const { WebSocketClient } = await import("/static/django_aws_api_gateway_websockets/websocket-client.js");
  const config = JSON.parse(document.getElementById("ws-config").textContent);
  const client = new WebSocketClient({ ...config, channel });
  window.follow = { client, notes: [], gaps: [] };
  client.addEventListener("note", (event) => window.follow.notes.push(event.detail.n));
  client.addEventListener("gap", (event) => window.follow.gaps.push(event.detail));
  const resumed = new Promise((resolve) => client.addEventListener("resumed", resolve, { once: true }));
  client.connect();
  await resumed;
  return client.storage !== null;
}"""

NOTES = """async (count) => {
  const deadline = performance.now() + 20000;
  while (window.follow.notes.length < count && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise((resolve) => setTimeout(resolve, 300));  // a late duplicate would show now
  return { notes: window.follow.notes, gaps: window.follow.gaps, last: window.follow.client.lastSeq("reloadtest") };
}"""

STORED = """() => Object.fromEntries(Object.keys(sessionStorage)
  .filter((key) => key.startsWith("django_aws_api_gateway_websockets:seq:"))
  .map((key) => [key, JSON.parse(sessionStorage.getItem(key))]))"""


def send_notes(demo, start, stop):
    demo.manage("shell", "-c", SEND.format(start=start, stop=stop, channel=RELOAD_CHANNEL))


def test_a_page_reload_resumes_from_the_position_kept_in_session_storage(demo, pages):
    page = pages("demo", demo)
    assert page.evaluate(FOLLOW, RELOAD_CHANNEL) is True
    send_notes(demo, 0, 4)
    before = page.evaluate(NOTES, 4)
    assert before["notes"] == [0, 1, 2, 3] and before["gaps"] == []
    stored = page.evaluate(STORED)
    assert [entry[RELOAD_CHANNEL][0] for entry in stored.values()] == [before["last"]], stored
    page.reload()
    page.wait_for_selector("#status[data-state=open]", timeout=30000)
    send_notes(demo, 4, 7)  # while no client of the page follows the channel
    page.evaluate(FOLLOW, RELOAD_CHANNEL)
    send_notes(demo, 7, 9)
    after = page.evaluate(NOTES, 5)
    # What was sent during the reload is replayed; nothing delivered before it comes again.
    assert after["notes"] == [4, 5, 6, 7, 8] and after["gaps"] == []
    assert after["last"] == before["last"] + 5


def test_without_session_storage_the_client_keeps_the_position_in_memory(demo, pages):
    page = pages("demo", demo)
    # A page where sessionStorage throws, as with storage disabled or in some private modes.
    page.evaluate(
        """() => Object.defineProperty(window, "sessionStorage", {
             configurable: true, get() { throw new DOMException("denied", "SecurityError"); } })"""
    )
    assert page.evaluate(FOLLOW, RELOAD_CHANNEL) is False
    send_notes(demo, 0, 3)
    result = page.evaluate(NOTES, 3)
    assert result["notes"] == [0, 1, 2] and result["gaps"] == []


def test_the_kept_positions_are_bounded_and_a_full_storage_is_survived(demo, pages):
    page = pages("demo", demo)
    limit = page.evaluate(
        """async () => (await import("/static/django_aws_api_gateway_websockets/websocket-client.js")).STORED_STREAMS_MAX"""
    )
    # Old positions of many channels, from earlier pages of this tab.
    page.evaluate(
        """(limit) => {
          const key = "django_aws_api_gateway_websockets:seq:" + new URL(
            JSON.parse(document.getElementById("ws-config").textContent).url).origin + new URL(
            JSON.parse(document.getElementById("ws-config").textContent).url).pathname;
          const old = JSON.parse(sessionStorage.getItem(key) || "{}");
          for (let i = 0; i < limit + 20; i += 1) old["old-" + i] = [i, i + 1];
          sessionStorage.setItem(key, JSON.stringify(old));
        }""",
        limit,
    )
    page.evaluate(FOLLOW, RELOAD_CHANNEL)
    send_notes(demo, 0, 2)
    assert page.evaluate(NOTES, 2)["notes"] == [0, 1]
    (entry,) = [e for e in page.evaluate(STORED).values() if RELOAD_CHANNEL in e]
    assert len(entry) == limit
    assert "old-0" not in entry and f"old-{limit + 19}" in entry  # the least recent went first
    # Storage that starts refusing writes (quota): delivery goes on, in memory.
    page.evaluate(
        "() => { Storage.prototype.setItem = () => { throw new DOMException('full', 'QuotaExceededError'); }; }"
    )
    send_notes(demo, 2, 4)
    assert page.evaluate(NOTES, 4)["notes"] == [0, 1, 2, 3]
    assert page.evaluate("() => window.follow.client.storage") is None
