// The browser client's large messages (issue #26, docs/large-messages.md), frame by frame, in
// Node (node --test; run by test_client_parts.py). The socket is scripted: each test says exactly
// which parts the server sends and in which order (out of order, repeated, missing, interleaved,
// contradicting, cut by a reconnect), and reads every frame the client sends. The same client
// against the real server and local gateway: tests/browser/test_large_messages_in_chromium.py.

import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";

class ScriptedSocket extends EventTarget {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 3;
  static all = [];

  constructor(url) {
    super();
    this.url = new URL(url);
    this.readyState = ScriptedSocket.CONNECTING;
    this.sent = [];
    ScriptedSocket.all.push(this);
  }

  send(frame) {
    assert.equal(this.readyState, ScriptedSocket.OPEN, "sent on a socket that is not open");
    assert.equal(typeof frame, "string");
    this.sent.push(frame);
  }

  close() {
    this.readyState = ScriptedSocket.CLOSED;
  }

  open() {
    this.readyState = ScriptedSocket.OPEN;
    this.dispatchEvent(new Event("open"));
  }

  receive(...frames) {
    for (const frame of frames) {
      const data = typeof frame === "string" ? frame : JSON.stringify(frame);
      this.dispatchEvent(new MessageEvent("message", { data }));
    }
  }

  drop() {
    this.readyState = ScriptedSocket.CLOSED;
    this.dispatchEvent(Object.assign(new Event("close"), { code: 1006, reason: "" }));
  }

  take() {
    const sent = this.sent;
    this.sent = [];
    return sent;
  }
}

globalThis.WebSocket = ScriptedSocket;
const { WebSocketClient, FRAME_BYTES, PART_CHUNK_BYTES, utf8Length } = await import(process.env.CLIENT_JS);

const clients = [];
const bytesOf = (text) => Buffer.byteLength(text, "utf8");

function client(options = {}) {
  const ws = new WebSocketClient({
    url: "ws://gateway.test/local",
    tokenUrl: "",
    persistSeq: false,
    resume: false,
    heartbeatMs: 3600 * 1000,
    backoffBaseMs: 1,
    backoffCapMs: 1,
    partsPerSecond: 0, // back to back (the pacing has its own tests)
    ...options,
  });
  clients.push(ws);
  return ws;
}

function opened(ws) {
  ws.connect();
  const socket = ScriptedSocket.all.at(-1);
  socket.open();
  socket.take();
  return socket;
}

// Everything the client emits, in order: [type, detail].
function events(ws, types = ["message", "messagedropped", "report", "note"]) {
  const seen = [];
  for (const type of types) ws.addEventListener(type, (event) => seen.push([type, event.detail]));
  return seen;
}

// A part as the server writes it (docs/large-messages.md#protocol).
function part(id, index, count, bytes, chunk, extra = {}) {
  return `\u001e${JSON.stringify({ p: id, i: index, n: count, b: bytes, ...extra })}\n${chunk}`;
}

// Cut a text the way the server does: pieces of at most `size` UTF-8 bytes, at character boundaries.
function serverParts(id, text, size) {
  const chunks = [];
  let chunk = [];
  let used = 0;
  for (const character of text) {
    const length = bytesOf(character);
    if (used + length > size) {
      chunks.push(chunk.join(""));
      chunk = [];
      used = 0;
    }
    chunk.push(character);
    used += length;
  }
  chunks.push(chunk.join(""));
  return chunks.map((piece, index) => part(id, index, chunks.length, bytesOf(text), piece));
}

function parsePart(frame) {
  assert.equal(frame[0], "\u001e", "a part starts with U+001E");
  const newline = frame.indexOf("\n");
  return { header: JSON.parse(frame.slice(1, newline)), chunk: frame.slice(newline + 1) };
}

function report(size, filler = "x") {
  const message = { type: "report", rows: "" };
  const room = size - bytesOf(JSON.stringify(message));
  message.rows = filler.repeat(Math.ceil(room / bytesOf(filler)));
  return message;
}

beforeEach(() => {
  ScriptedSocket.all = [];
});
afterEach(() => {
  for (const ws of clients.splice(0)) ws.close();
});

// --- the page's own sends --------------------------------------------------------------------

test("a message that fits one frame is sent as it always was: one frame, no envelope", () => {
  const ws = client();
  const socket = opened(ws);
  ws.send({ handler: "send_chat", text: "hi" });
  const exactly = "y".repeat(FRAME_BYTES);
  ws.send(exactly);
  assert.deepEqual(socket.take(), [JSON.stringify({ handler: "send_chat", text: "hi" }), exactly]);
});

test("a 1 MB send leaves as parts of at most 32 KB each (UTF-8, envelope included) that add up to it", () => {
  const ws = client();
  const socket = opened(ws);
  const message = report(1024 * 1024 - 100);
  const text = JSON.stringify(message);
  assert.equal(ws.send(message), true);
  const frames = socket.take();
  assert.equal(frames.length, Math.ceil(bytesOf(text) / PART_CHUNK_BYTES));
  const parts = frames.map(parsePart);
  for (const [index, frame] of frames.entries()) {
    assert.ok(bytesOf(frame) <= FRAME_BYTES, `part ${index} is ${bytesOf(frame)} bytes`);
    assert.deepEqual(Object.keys(parts[index].header), ["p", "i", "n", "b"]);
    assert.equal(parts[index].header.i, index);
    assert.equal(parts[index].header.n, frames.length);
    assert.equal(parts[index].header.b, bytesOf(text));
    assert.equal(parts[index].header.p, parts[0].header.p);
    assert.match(parts[index].header.p, /^[A-Za-z0-9_-]{1,64}$/);
  }
  assert.equal(parts.map((p) => p.chunk).join(""), text);
});

test("multi-byte text is cut between characters, never inside one, counting bytes not string length", () => {
  const ws = client();
  const socket = opened(ws);
  // 2-, 3- and 4-byte characters (an emoji is two UTF-16 units): 16,000 characters (20,000 units) is more than
  // 32 KB in UTF-8 although it is less than 32,768 units of string length.
  const text = "é€😀a".repeat(4000);
  assert.ok(text.length < FRAME_BYTES && bytesOf(text) > FRAME_BYTES);
  ws.send(text);
  const frames = socket.take();
  assert.ok(frames.length >= 2, "split although its string length fits");
  const chunks = frames.map((frame) => parsePart(frame).chunk);
  for (const [index, frame] of frames.entries()) {
    assert.ok(bytesOf(frame) <= FRAME_BYTES);
    assert.ok(bytesOf(chunks[index]) <= PART_CHUNK_BYTES);
    assert.equal(chunks[index].isWellFormed(), true, `part ${index} splits a surrogate pair`);
    assert.equal(Buffer.from(chunks[index], "utf8").toString("utf8"), chunks[index]);
  }
  assert.equal(chunks.join(""), text);
  assert.equal(parsePart(frames[0]).header.b, bytesOf(text));
});

test("utf8Length counts as UTF-8 encodes: 1 to 4 bytes a character, a lone surrogate as U+FFFD", () => {
  for (const text of ["", "a", "é", "€", "😀", "a😀é€", "\ud800", "x\udc00y", "\ud83d"]) {
    assert.equal(utf8Length(text), new TextEncoder().encode(text).length, JSON.stringify(text));
  }
});

test("a send over maxMessageBytes throws a RangeError naming both sizes; nothing is sent or queued", () => {
  const ws = client({ maxMessageBytes: 100_000 });
  const socket = opened(ws);
  assert.throws(() => ws.send("€".repeat(33_334)), (error) => {
    assert.ok(error instanceof RangeError);
    assert.match(error.message, /100002 bytes/);
    assert.match(error.message, /100000/);
    return true;
  });
  assert.deepEqual(socket.take(), []);
  ws.send("€".repeat(33_333)); // 99,999 bytes: within the limit, as parts
  assert.equal(socket.take().length, 4);
  const closed = client();
  assert.throws(() => closed.send("x".repeat(1024 * 1024 + 1)), RangeError);
  assert.deepEqual(closed.queue, []);
});

test("a large send while not connected is queued whole and leaves as parts on open", () => {
  const ws = client();
  const text = "q".repeat(100_000);
  ws.send(text);
  assert.deepEqual(ws.queue, [text]);
  ws.connect();
  const socket = ScriptedSocket.all.at(-1);
  socket.open();
  const parts = socket.take().map(parsePart);
  assert.equal(parts.length, 4);
  assert.equal(parts.map((p) => p.chunk).join(""), text);
});

test("two large sends get different ids; a short text that starts with U+001E is sent as one part", () => {
  const ws = client();
  const socket = opened(ws);
  ws.send("a".repeat(40_000));
  ws.send("b".repeat(40_000));
  ws.send("\u001enot a header");
  const parts = socket.take().map(parsePart);
  assert.equal(parts.length, 5);
  assert.notEqual(parts[0].header.p, parts[2].header.p);
  assert.notEqual(parts[2].header.p, parts[4].header.p);
  assert.deepEqual(parts[4].header, { p: parts[4].header.p, i: 0, n: 1, b: 13 });
  assert.equal(parts[4].chunk, "\u001enot a header");
});

test("the client's own parts, fed back to a client, come out as the message that was sent", () => {
  const sender = client();
  const out = opened(sender);
  const message = report(300_000, "ü€😀");
  sender.send(message);
  const receiver = client();
  const seen = events(receiver);
  const socket = opened(receiver);
  socket.receive(...out.take().reverse());
  assert.deepEqual(seen, [
    ["message", message],
    ["report", message],
  ]);
});

// --- the server's parts ----------------------------------------------------------------------

test("parts in order: one whole message, its event once; no event for any part", () => {
  const ws = client();
  const seen = events(ws);
  const socket = opened(ws);
  const message = report(400_000);
  const parts = serverParts("q7Lk2mZr0dTa", JSON.stringify(message), 131_000);
  assert.equal(parts.length, 4);
  socket.receive(...parts.slice(0, 3));
  assert.deepEqual(seen, []);
  socket.receive(parts[3]);
  assert.deepEqual(seen, [
    ["message", message],
    ["report", message],
  ]);
});

test("parts out of order and repeated: delivered once, whole, when the last missing one arrives", () => {
  const ws = client();
  const seen = events(ws);
  const socket = opened(ws);
  const message = report(300_000);
  const [a, b, c] = serverParts("m1", JSON.stringify(message), 131_000);
  socket.receive(c, a, c, a);
  assert.deepEqual(seen, []);
  socket.receive(b, b, a);
  assert.deepEqual(seen, [
    ["message", message],
    ["report", message],
  ]);
});

test("parts of two messages interleaved: each comes out whole, in the order it completed", () => {
  const ws = client();
  const seen = events(ws);
  const socket = opened(ws);
  const first = report(200_000, "1");
  const second = { ...report(200_000, "2"), type: "note" };
  const [a0, a1] = serverParts("first", JSON.stringify(first), 131_000);
  const [b0, b1] = serverParts("second", JSON.stringify(second), 131_000);
  socket.receive(a0, b0, b1, a1);
  assert.deepEqual(seen, [
    ["message", second],
    ["note", second],
    ["message", first],
    ["report", first],
  ]);
});

test("multi-byte characters at every part boundary come out intact", () => {
  const ws = client();
  const seen = events(ws);
  const socket = opened(ws);
  const message = report(200_000, "😀é€");
  const parts = serverParts("mb", JSON.stringify(message), 1001); // an odd size: boundaries fall everywhere
  assert.ok(parts.length > 150);
  socket.receive(...parts);
  assert.deepEqual(seen[0], ["message", message]);
});

test("a part that never comes: the message is dropped whole after partTimeoutMs, with an event naming it", async () => {
  const ws = client({ partTimeoutMs: 20 });
  const seen = events(ws);
  const socket = opened(ws);
  const [a, , c] = serverParts("lost1", JSON.stringify(report(300_000)), 131_000);
  const dropped = new Promise((resolve) => ws.addEventListener("messagedropped", resolve, { once: true }));
  socket.receive(a, c);
  const event = await dropped;
  assert.deepEqual(event.detail, { id: "lost1", reason: "timeout", received: 2, parts: 3, bytes: event.detail.bytes });
  assert.equal(seen.filter(([type]) => type !== "messagedropped").length, 0);
  socket.receive(c); // a late part of the dropped message: nothing, not a second report
  socket.receive({ type: "note", text: "after" });
  assert.deepEqual(
    seen.map(([type]) => type),
    ["messagedropped", "message", "note"],
  );
});

test("an abort part drops the message at once; its later parts are ignored, reported once", () => {
  const ws = client();
  const seen = events(ws);
  const socket = opened(ws);
  const text = JSON.stringify(report(500_000));
  const parts = serverParts("ab1", text, 131_000);
  socket.receive(parts[0], parts[1], part("ab1", 2, parts.length, bytesOf(text), "", { x: 1 }), parts[2], parts[3]);
  assert.deepEqual(seen, [
    ["messagedropped", { id: "ab1", reason: "aborted", received: 2, parts: parts.length, bytes: bytesOf(text) }],
  ]);
});

test("contradicting or malformed parts drop the message; nothing is delivered in part", () => {
  const ws = client({ maxMessageBytes: 1000 });
  const seen = events(ws);
  const socket = opened(ws);
  const reasons = () => seen.map(([type, detail]) => `${type}:${detail.id}:${detail.reason}`);
  socket.receive(part("n", 0, 2, 10, "abcde"), part("n", 1, 3, 10, "fghij")); // n differs
  socket.receive(part("b", 0, 2, 10, "abcde"), part("b", 1, 2, 11, "fghij")); // b differs
  socket.receive(part("over", 0, 2, 6, "abcde"), part("over", 1, 2, 6, "fghij")); // chunks over b
  socket.receive(part("under", 0, 2, 12, "abcde"), part("under", 1, 2, 12, "fghij")); // short of b
  socket.receive(part("idx", 2, 2, 10, "abcde")); // i out of range
  socket.receive(part("big", 0, 2, 1001, "abcde")); // over maxMessageBytes
  socket.receive(part("many", 0, 11, 10, "a")); // more parts than bytes
  socket.receive("\u001e{not json}\nabc", "\u001e{\"p\":\"bad id!\",\"i\":0,\"n\":1,\"b\":1}\nx");
  socket.receive(`\u001e${JSON.stringify({ p: "nonl", i: 0, n: 1, b: 0 })}`); // no line feed
  assert.deepEqual(reasons(), [
    "messagedropped:n:bad_part",
    "messagedropped:b:bad_part",
    "messagedropped:over:bad_part",
    "messagedropped:under:bad_part",
    "messagedropped:idx:bad_part",
    "messagedropped:big:too_large",
    "messagedropped:many:bad_part",
    "messagedropped:null:bad_part",
    "messagedropped:null:bad_part",
    "messagedropped:nonl:bad_part",
  ]);
  socket.receive(part("ok", 0, 1, 2, "{}"));
  assert.deepEqual(seen.at(-1), ["message", {}]);
});

test("a reconnect mid-message drops the partial one; the same id on the new socket starts afresh", async () => {
  const ws = client();
  const seen = events(ws);
  const first = opened(ws);
  const message = report(300_000);
  const parts = serverParts("r1", JSON.stringify(message), 131_000);
  first.receive(parts[0], parts[1]);
  first.drop();
  assert.deepEqual(seen, [
    ["messagedropped", { id: "r1", reason: "closed", received: 2, parts: 3, bytes: bytesOf(JSON.stringify(message)) }],
  ]);
  for (let waited = 0; ScriptedSocket.all.at(-1) === first && waited < 5000; waited += 5) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const second = ScriptedSocket.all.at(-1);
  second.open();
  second.receive(parts[2]); // the old socket's other parts are not kept: no half message
  assert.equal(seen.length, 1);
  second.receive(parts[0], parts[1]); // the replay sends it whole again
  assert.deepEqual(seen.slice(1), [
    ["message", message],
    ["report", message],
  ]);
});

test("close() drops a message in parts; nothing arrives after it", () => {
  const ws = client();
  const seen = events(ws);
  const socket = opened(ws);
  socket.receive(serverParts("c1", JSON.stringify(report(200_000)), 131_000)[0]);
  ws.close();
  assert.deepEqual(
    seen.map(([type, detail]) => [type, detail.reason]),
    [["messagedropped", "closed"]],
  );
});

test("a sequenced channel message in parts reaches the subscription's onMessage whole, in order, once", () => {
  const ws = client({ resume: true });
  const got = [];
  ws.subscribe("room-1", { onMessage: (message) => got.push(message) });
  const socket = opened(ws);
  socket.receive({ type: "subscribed", channel: "room-1", seq: 4 });
  const big = { ...report(250_000), stream: "room-1", seq: 6 };
  const small = { type: "report", rows: "", stream: "room-1", seq: 5 };
  const parts = serverParts("s6", JSON.stringify(big), 131_000);
  socket.receive(parts[0]);
  socket.receive(parts[1]);
  assert.deepEqual(got, []);
  socket.receive(parts[2]); // seq 6 whole, held until 5 comes
  assert.deepEqual(got, []);
  socket.receive(small);
  assert.deepEqual(got, [small, big]);
  socket.receive(...parts); // the same message again (a replay): a duplicate
  assert.equal(got.length, 2);
});

test("the server's part_received answers and message_error refusals: the first is not an event, the second is", () => {
  const ws = client();
  const seen = events(ws, ["message", "part_received", "message_error"]);
  const socket = opened(ws);
  socket.receive({ type: "part_received", p: "c-1", i: 0 });
  const refusal = { type: "message_error", p: "c-1", status: 413, error: "too_large", message: "Message too large." };
  socket.receive(refusal);
  assert.deepEqual(seen, [
    ["message", refusal],
    ["message_error", refusal],
  ]);
});

test("a whisper over one frame goes as parts too, never as a frame API Gateway would close the socket for", () => {
  const ws = client();
  const socket = opened(ws);
  const room = ws.subscribe("room-1", {});
  socket.take();
  socket.receive({ type: "subscribed", channel: "room-1", seq: 0 });
  assert.equal(room.whisper("drawing", { points: "p".repeat(40_000) }), true);
  const frames = socket.take();
  assert.equal(frames.length, 2);
  assert.ok(frames.every((frame) => bytesOf(frame) <= FRAME_BYTES));
  const whole = JSON.parse(frames.map((frame) => parsePart(frame).chunk).join(""));
  assert.deepEqual(whole, { handler: "whisper", channel: "room-1", event: "drawing", data: { points: "p".repeat(40_000) } });
});

// --- the pace of the page's parts --------------------------------------------------------------

async function until(condition, what) {
  for (let waited = 0; !condition() && waited < 10_000; waited += 5) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.ok(condition(), what);
}

test("parts leave paced: partsBurst at once, the rest at partsPerSecond, in order; a small message does not wait", async () => {
  const ws = client({ partsPerSecond: 500, partsBurst: 5 });
  const socket = opened(ws);
  const text = "z".repeat(10 * PART_CHUNK_BYTES);
  ws.send(text);
  assert.equal(socket.sent.length, 5, "the burst leaves at once");
  ws.send({ handler: "ping" });
  assert.equal(socket.sent.at(-1), JSON.stringify({ handler: "ping" }), "a message in one frame leaves at once");
  await until(() => socket.sent.length === 11, "every part left");
  const frames = socket.take().filter((frame) => frame.startsWith("\u001e"));
  const parts = frames.map(parsePart);
  assert.deepEqual(
    parts.map((p) => p.header.i),
    [...Array(10).keys()],
  );
  assert.equal(parts.map((p) => p.chunk).join(""), text);
});

test("a socket closed before a message's parts all left: the message goes again, whole, under a new id", async () => {
  const ws = client({ partsPerSecond: 50, partsBurst: 2 });
  const first = opened(ws);
  const text = "w".repeat(4 * PART_CHUNK_BYTES);
  ws.send(text);
  const cut = first.take().map(parsePart);
  assert.equal(cut.length, 2);
  first.drop();
  assert.deepEqual(ws.queue, [text], "the whole message waits for the next socket");
  await until(() => ScriptedSocket.all.at(-1) !== first, "a new socket");
  const second = ScriptedSocket.all.at(-1);
  second.open();
  await until(() => second.sent.length === 4, "the message sent again");
  const again = second.take().map(parsePart);
  assert.equal(again.length, 4);
  assert.notEqual(again[0].header.p, cut[0].header.p);
  assert.deepEqual(
    again.map((p) => p.header.i),
    [0, 1, 2, 3],
  );
  assert.equal(again.map((p) => p.chunk).join(""), text);
});

test("close() with parts still to leave sends nothing more and keeps nothing", async () => {
  const ws = client({ partsPerSecond: 200, partsBurst: 1 });
  const socket = opened(ws);
  ws.send("v".repeat(3 * PART_CHUNK_BYTES));
  assert.equal(socket.take().length, 1);
  ws.close();
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.deepEqual(socket.sent, []);
  assert.deepEqual(ws.queue, []);
});
