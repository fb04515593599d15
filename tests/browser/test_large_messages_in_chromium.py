"""Messages of any size (issue #26, docs/large-messages.md) in Chromium against the demo servers,
through the local gateway that enforces AWS's limits (32 KB a client frame, 128 KB a message and
a POST): the page sends a 1 MB message (multi-byte text: split by UTF-8 bytes, never inside a
character) that the demo's handler reads whole, and receives a 1 MB message that the server
sent with send_to_channel, whole, once, on its channel handler. Frame by frame against a
scripted socket: tests/development/client_parts.test.mjs."""

import subprocess

import pytest

from .conftest import MANAGE

pytestmark = pytest.mark.browser

SIZE = 1_000_000  # bytes of UTF-8 in each direction: 1 MB, within the default max_message_bytes
# 1-, 2-, 3- and 4-byte characters (10 bytes): part boundaries fall inside every kind of them.
FILLER = "aé€😀"
REPEAT = SIZE // 10

# Two messages of 1 MB to the page: one numbered and stored (send_to_channel encodes JSON with
# ASCII escapes: 25 bytes a filler), one posted as the text given, raw UTF-8 (10 bytes a filler),
# which the server cuts between characters of every width.
SEND_BIG = f"""
import json
from django_aws_api_gateway_websockets.history import send_to_channel
from django_aws_api_gateway_websockets.models import WebSocketSession
sent = send_to_channel("bigroom", {{"type": "note", "blob": {FILLER!r} * {SIZE // 25}, "end": "the end"}})
raw = json.dumps({{"type": "rawnote", "blob": {FILLER!r} * {REPEAT}}}, ensure_ascii=False)
posted = WebSocketSession.objects.filter(connected=True, subscriptions__channel="bigroom").send_message(raw)
print("delivered", len(sent.result.delivered), len(posted.delivered))
"""

# A client of its own on the "bigroom" channel (the demo page's client stays on its room), and
# the demo's "lobby" room to see the chat that the demo's handler answers a message with.
START = """async () => {
  const { WebSocketClient } = await import("/static/django_aws_api_gateway_websockets/websocket-client.js");
  const config = JSON.parse(document.getElementById("ws-config").textContent);
  const client = new WebSocketClient({ ...config, channel: "bigroom" });
  window.big = { client, notes: [], raw: [], chats: [], dropped: [], errors: [], frames: [] };
  client.addEventListener("rawnote", (event) => window.big.raw.push(event.detail));
  client.addEventListener("messagedropped", (event) => window.big.dropped.push(event.detail));
  client.addEventListener("message_error", (event) => window.big.errors.push(event.detail));
  client.addEventListener("error", (event) => window.big.errors.push(event.detail));
  client.subscribe("bigroom", { onMessage: (message) => window.big.notes.push(message) });
  client.subscribe("lobby", { onMessage: (message) => window.big.chats.push(message) });
  client.connect();
  await new Promise((resolve) => client.addEventListener("open", resolve, { once: true }));
  // Record what the page's socket sends: the parts, as the gateway gets them.
  const send = client.socket.send.bind(client.socket);
  client.socket.send = (frame) => { window.big.frames.push(frame); send(frame); };
  const deadline = performance.now() + 15000;
  while (client.channels.get("lobby")?.state !== "subscribed" && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}"""

# The page sends 1 MB; the handler (the demo's send_chat) reads "text" from the end of it, so it
# answers only if every part arrived and was put back in order.
SEND = """async ({ filler, repeat }) => {
  const text = `whole: ${filler.length * repeat} characters`;
  window.big.client.send({ handler: "send_chat", room: "lobby", pad: filler.repeat(repeat), text });
  // A second one right behind it: 64 parts, more than the server's rate limit (burst 40, 20/s)
  // takes if they reach it together, as API Gateway's concurrent calls can: the client paces them.
  window.big.client.send({ handler: "send_chat", room: "lobby", pad: filler.repeat(repeat), text: `${text}, again` });
  const frames = window.big.frames;
  const deadline = performance.now() + 30000;
  while (!window.big.chats.some((chat) => chat.text === `${text}, again`) && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await new Promise((resolve) => setTimeout(resolve, 300)); // a duplicate would show now
  const bytes = frames.map((frame) => new TextEncoder().encode(frame).length);
  return {
    text,
    chats: window.big.chats.map((chat) => chat.text),
    parts: frames.filter((frame) => frame.startsWith("\\u001e")).length,
    largestFrame: Math.max(...bytes),
    sentBytes: bytes.reduce((a, b) => a + b, 0),
    errors: window.big.errors,
    dropped: window.big.dropped,
  };
}"""

RECEIVE = """async ({ filler, noteRepeat, rawRepeat }) => {
  const deadline = performance.now() + 30000;
  while ((!window.big.notes.length || !window.big.raw.length) && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await new Promise((resolve) => setTimeout(resolve, 500)); // a duplicate would show now
  const { notes, raw } = window.big;
  const note = notes[0] || {};
  return {
    count: notes.length,
    whole: note.blob === filler.repeat(noteRepeat),
    end: note.end,
    stream: note.stream,
    rawCount: raw.length,
    rawWhole: raw[0]?.blob === filler.repeat(rawRepeat),
    rawBytes: raw[0]?.blob ? new TextEncoder().encode(raw[0].blob).length : 0,
    errors: window.big.errors,
    dropped: window.big.dropped,
  };
}"""


def test_chromium_sends_and_receives_a_1mb_message_whole_through_the_local_gateway(demo, pages):
    page = pages("demo", demo)
    page.evaluate(START)

    sent = page.evaluate(SEND, {"filler": FILLER, "repeat": REPEAT})
    assert sent["errors"] == [] and sent["dropped"] == []
    # The handler ran on each whole message, once.
    assert [chat for chat in sent["chats"] if chat.startswith(sent["text"])] == [sent["text"], f"{sent['text']}, again"]
    assert sent["parts"] == 2 * 32  # 1,000,000 bytes and a few each: 32 parts of at most 32,000 bytes of text
    assert sent["largestFrame"] <= 32 * 1024  # every frame within API Gateway's frame limit
    assert sent["sentBytes"] / (2 * SIZE) <= 1.01  # the envelope's overhead

    done = subprocess.run([*MANAGE, "shell", "-c", SEND_BIG], env=demo.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    received = page.evaluate(RECEIVE, {"filler": FILLER, "noteRepeat": SIZE // 25, "rawRepeat": REPEAT})
    assert received["errors"] == [] and received["dropped"] == []
    # The numbered one: whole, once, on the channel's handler.
    assert received["count"] == 1 and received["whole"]
    assert received["end"] == "the end" and received["stream"] == "bigroom"
    # The raw UTF-8 one: whole, once, every character intact.
    assert received["rawCount"] == 1 and received["rawWhole"] and received["rawBytes"] == SIZE
    # Each delivered to the page's socket, as the server counts (after the shell's own lines).
    assert done.stdout.splitlines()[-1] == "delivered 1 1", done.stdout


# --- a socket lost mid-message: the half is dropped, the resume replays it whole --------------

SEND_NOTE = f"""
from django_aws_api_gateway_websockets.history import send_to_channel
sent = send_to_channel("bigroom", {{"type": "note", "blob": {FILLER!r} * {SIZE // 25}, "end": "the end"}})
print("delivered", len(sent.result.delivered), "gone", len(sent.result.gone))
"""

# The page's socket closes as soon as the first part of a message arrives (after the client
# read it), as a network drop would cut it.
DROP_ON_FIRST_PART = """() => {
  const { client } = window.big;
  const socket = client.socket;
  window.big.opens = 0;
  client.addEventListener("open", () => { window.big.opens += 1; });
  socket.addEventListener("message", (event) => {
    if (event.data.startsWith("\\u001e") && socket.readyState === WebSocket.OPEN) socket.close(4000, "cut mid-message");
  });
}"""

REPLAYED = """async ({ filler, repeat }) => {
  const deadline = performance.now() + 40000;
  while (!window.big.notes.length && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await new Promise((resolve) => setTimeout(resolve, 500)); // a duplicate would show now
  const { notes, dropped, opens, errors } = window.big;
  return {
    count: notes.length,
    whole: notes[0]?.blob === filler.repeat(repeat) && notes[0]?.end === "the end",
    dropped,
    opens,
    errors: errors.filter((error) => error.kind !== "socket"),
  };
}"""


def test_chromium_drops_a_message_cut_by_a_lost_socket_and_the_resume_replays_it_whole(demo, pages):
    page = pages("demo", demo)
    page.evaluate(START)
    page.evaluate(DROP_ON_FIRST_PART)
    done = subprocess.run(
        [*MANAGE, "shell", "-c", SEND_NOTE], env=demo.env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    # (How the server counts it, gone or delivered, depends on whether the gateway saw the close
    # before the second part's post: tests/e2e/test_large_messages_e2e.py checks that side.)
    result = page.evaluate(REPLAYED, {"filler": FILLER, "repeat": SIZE // 25})
    assert result["errors"] == []
    # The half that arrived was dropped, named, never delivered ...
    assert len(result["dropped"]) == 1, result["dropped"]
    assert result["dropped"][0]["reason"] == "closed" and result["dropped"][0]["received"] == 1
    # ... and after the reconnect the resume replayed the message whole, once.
    assert result["opens"] >= 1
    assert result["count"] == 1 and result["whole"]
