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
