// The browser client's channel bookkeeping (subscribe, docs/channels.md), frame by frame, in
// Node (node --test; run by test_client_channels.py). The socket is scripted, so each test says
// exactly which frames the server answers with and in which order: the duplicates a two-way
// route sends, answers lost or crossing a reconnect, frames that make no sense. What the real
// server and gateway do with these frames is tests/browser/ (Chromium) and tests/e2e/.

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
    this.sent.push(JSON.parse(frame));
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

  // The frames sent since the last call.
  take() {
    const sent = this.sent;
    this.sent = [];
    return sent;
  }
}

globalThis.WebSocket = ScriptedSocket;
const { WebSocketClient } = await import(process.env.CLIENT_JS);

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
const clients = [];

function client(options = {}) {
  const ws = new WebSocketClient({
    url: "ws://gateway.test/local",
    tokenUrl: "",
    persistSeq: false,
    heartbeatMs: 3600 * 1000,
    backoffBaseMs: 1,
    backoffCapMs: 1,
    channelRetryMs: 3600 * 1000,
    ...options,
  });
  clients.push(ws);
  return ws;
}

function latest() {
  return ScriptedSocket.all.at(-1);
}

// Connect and open; returns the socket with what was sent on open already taken.
function opened(ws) {
  ws.connect();
  const socket = latest();
  socket.open();
  return socket;
}

async function reconnected(ws, dropped) {
  dropped.drop();
  for (let waited = 0; latest() === dropped && waited < 5000; waited += 5) {
    await new Promise((resolve) => setTimeout(resolve, 5)); // the backoff is 1 ms
  }
  assert.notEqual(latest(), dropped, "no new socket after the drop");
  const socket = latest();
  socket.open();
  return socket;
}

// Handlers that record their calls; onPresence (which asks for the member list) only when asked.
function recorder({ presence = false } = {}) {
  const calls = [];
  const handlers = {};
  const names = ["onSubscribed", "onMessage", "onWhisper", "onError", "onClose"];
  for (const name of presence ? [...names, "onPresence"] : names) {
    handlers[name] = (detail, members) => calls.push([name, detail, members.map((m) => m.username)]);
  }
  return { calls, handlers, names: () => calls.map(([name]) => name) };
}

beforeEach(() => {
  ScriptedSocket.all = [];
});
afterEach(() => {
  for (const ws of clients.splice(0)) ws.close();
});

test("a single-channel client sends what it always sent: the channel in the query, the 5.0 resume", () => {
  const ws = client({ channel: "lobby" });
  const socket = opened(ws);
  assert.equal(socket.url.searchParams.get("channel"), "lobby");
  assert.deepEqual(socket.take(), [{ handler: "resume", channel: "lobby", after: null, user_after: null }]);
  ws.switchChannel("python");
  assert.deepEqual(socket.take(), [{ handler: "change_channel", channel: "python" }]);
});

test("subscribe before open: subscribed after the connect channel's resume; messages routed by stream", () => {
  const ws = client({ channel: "lobby" });
  const room = recorder();
  const subscription = ws.subscribe("room-42", room.handlers);
  assert.equal(subscription.state, "subscribing");
  const socket = opened(ws);
  assert.deepEqual(socket.take(), [
    { handler: "resume", channel: "lobby", after: null, user_after: null },
    { handler: "subscribe", channel: "room-42" },
  ]);
  socket.receive({ type: "subscribed", channel: "room-42", seq: 45 });
  assert.equal(subscription.state, "subscribed");
  assert.equal(subscription.lastSeq, 45);
  socket.receive(
    { type: "chat", text: "in the lobby", stream: "lobby", seq: 1 },
    { type: "chat", text: "in the room", stream: "room-42", seq: 46 },
    { type: "chat", text: "again", stream: "room-42", seq: 46 }, // a duplicate: dropped
  );
  assert.deepEqual(room.names(), ["onSubscribed", "onMessage"]);
  assert.deepEqual(room.calls[0][1], { channel: "room-42", seq: 45 });
  assert.equal(room.calls[1][1].text, "in the room");
});

test("after a reconnect every channel resumes from its own number: replay before the answer, then the next page", async () => {
  const ws = client({ channel: "lobby" });
  const room = recorder();
  ws.subscribe("room-42", room.handlers);
  const ws1 = opened(ws);
  ws1.receive(
    { type: "subscribed", channel: "room-42", seq: 45 },
    { type: "chat", text: "a", stream: "room-42", seq: 46 },
    { type: "chat", text: "l", stream: "lobby", seq: 7 },
  );
  ws1.take();
  const ws2 = await reconnected(ws, ws1);
  assert.deepEqual(ws2.take(), [
    { handler: "resume", channel: "lobby", after: 7, user_after: null },
    { handler: "subscribe", channel: "room-42", after: 46 },
  ]);
  // The replay comes before "subscribed"; the page was full ("more"): the client asks on.
  ws2.receive(
    { type: "replay", stream: "room-42", messages: [{ type: "chat", text: "b", stream: "room-42", seq: 47 }] },
    { type: "subscribed", channel: "room-42", seq: 1045, more: 47 },
  );
  assert.deepEqual(ws2.take(), [{ handler: "resume", channels: { "room-42": 47 } }]);
  ws2.receive(
    { type: "replay", stream: "room-42", messages: [{ type: "chat", text: "c", stream: "room-42", seq: 48 }] },
    { type: "resumed", streams: { "room-42": 48 } },
  );
  const texts = room.calls.filter(([name]) => name === "onMessage").map(([, message]) => message.text);
  assert.deepEqual(texts, ["a", "b", "c"]);
  assert.deepEqual(room.names().filter((name) => name === "onSubscribed").length, 2);
});

test("a two-way route's copy of an answer is read once", () => {
  const ws = client();
  const room = recorder();
  ws.subscribe("room-1", room.handlers);
  const socket = opened(ws);
  assert.deepEqual(socket.take(), [{ handler: "resume", user_after: null }, { handler: "subscribe", channel: "room-1" }]);
  socket.receive({ type: "subscribed", channel: "room-1", seq: 3 }, { type: "subscribed", channel: "room-1", seq: 3 });
  assert.deepEqual(room.names(), ["onSubscribed"]);
});

test("unsubscribe waits a tick: a remount (React StrictMode) keeps the subscription without a frame", async () => {
  const ws = client();
  const first = ws.subscribe("room-1");
  const socket = opened(ws);
  socket.receive({ type: "subscribed", channel: "room-1", seq: 0 });
  socket.take();
  first.unsubscribe();
  const second = ws.subscribe("room-1");
  await tick();
  assert.deepEqual(socket.take(), []);
  assert.equal(second.state, "subscribed");
  assert.equal(first.state, "closed");
  second.unsubscribe();
  await tick();
  assert.deepEqual(socket.take(), [{ handler: "unsubscribe", channel: "room-1" }]);
});

test("one request per channel in flight: a subscribe while the unsubscribe is unanswered waits for it", async () => {
  const ws = client();
  const socket = opened(ws);
  socket.take();
  const room = ws.subscribe("room-1");
  socket.receive({ type: "subscribed", channel: "room-1", seq: 0 });
  room.unsubscribe();
  await tick();
  assert.deepEqual(socket.take(), [
    { handler: "subscribe", channel: "room-1" },
    { handler: "unsubscribe", channel: "room-1" },
  ]);
  const again = recorder();
  ws.subscribe("room-1", again.handlers);
  assert.deepEqual(socket.take(), []); // the unsubscribe is not answered yet
  socket.receive({ type: "unsubscribed", channel: "room-1" });
  // Subscribed again before the unsubscribe ended: from where the page stands.
  assert.deepEqual(socket.take(), [{ handler: "subscribe", channel: "room-1", after: 0 }]);
  socket.receive({ type: "subscribed", channel: "room-1", seq: 4 });
  assert.deepEqual(again.names(), ["onSubscribed"]);
});

test("let go before the subscribe was answered: the answer comes, then the unsubscribe", async () => {
  const ws = client();
  const socket = opened(ws);
  socket.take();
  const room = ws.subscribe("room-1", { onPresence() {} });
  room.unsubscribe();
  await tick();
  assert.deepEqual(socket.take(), [{ handler: "subscribe", channel: "room-1" }]);
  socket.receive({ type: "subscribed", channel: "room-1", seq: 5 });
  // Held on the server now: undone, without asking for the members of a channel being left.
  assert.deepEqual(socket.take(), [{ handler: "unsubscribe", channel: "room-1" }]);
  socket.receive({ type: "unsubscribed", channel: "room-1" });
  assert.equal(ws.channels.size, 0);
  assert.equal(ws.lastSeq("room-1"), null); // forgotten: a later subscribe starts afresh
  ws.subscribe("room-1");
  assert.deepEqual(socket.take(), [{ handler: "subscribe", channel: "room-1" }]);
});

test("a subscribe refused is reported, ends the subscription, and is not asked again on reconnect", async () => {
  const ws = client();
  const staff = recorder();
  const subscription = ws.subscribe("staff", staff.handlers);
  const ws1 = opened(ws);
  ws1.receive({
    type: "subscribe_error", channel: "staff", status: 403, reason: "not_allowed", error: "Channel not allowed.",
  });
  assert.deepEqual(staff.names(), ["onError", "onClose"]);
  assert.deepEqual(staff.calls[0][1], {
    kind: "subscribe", channel: "staff", status: 403, reason: "not_allowed", error: "Channel not allowed.",
  });
  assert.deepEqual(staff.calls[1][1], { channel: "staff", reason: "refused", status: 403 });
  assert.equal(subscription.state, "closed");
  ws1.take();
  const ws2 = await reconnected(ws, ws1);
  assert.deepEqual(ws2.take(), [{ handler: "resume", user_after: null }]);
});

test("channel_access_revoked ends that subscription only; the socket keeps its other channels", async () => {
  const ws = client({ channel: "lobby" });
  const board = recorder();
  ws.subscribe("board", board.handlers);
  const ws1 = opened(ws);
  ws1.receive({ type: "subscribed", channel: "board", seq: 0 });
  const revoked = [];
  ws.addEventListener("channel_access_revoked", (event) => revoked.push(event.detail.channel));
  ws1.receive({ type: "channel_access_revoked", channel: "board", reason: "This channel is now for staff only." });
  assert.deepEqual(board.names(), ["onSubscribed", "onClose"]);
  assert.deepEqual(board.calls[1][1], {
    channel: "board", reason: "revoked", message: "This channel is now for staff only.",
  });
  assert.deepEqual(revoked, ["board"]); // the application's own listener still hears it
  ws1.take();
  const ws2 = await reconnected(ws, ws1);
  assert.equal(ws2.url.searchParams.get("channel"), "lobby");
  assert.deepEqual(ws2.take(), [{ handler: "resume", channel: "lobby", after: null, user_after: null }]);
});

test("the connect channel of a single-channel client revoked: the client stops instead of being refused thrice", async () => {
  const ws = client({ channel: "board" });
  const socket = opened(ws);
  const errors = [];
  ws.addEventListener("error", (event) => errors.push(event.detail));
  socket.receive({ type: "channel_access_revoked", channel: "board", reason: "staff_only" });
  assert.deepEqual(errors, [{ kind: "revoked", status: 403, reason: "staff_only", channel: "board", final: true }]);
  socket.drop(); // the server closes it
  assert.equal(ws.stopped, true);
  assert.equal(ws.timers.reconnect, undefined, "a reconnect is scheduled after the revocation");
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(ScriptedSocket.all.length, 1, "reconnected after the revocation");
});

test("the connect channel revoked while others are held: no longer joined on reconnect, the client goes on", async () => {
  const ws = client({ channel: "board" });
  ws.subscribe("room-1");
  const ws1 = opened(ws);
  ws1.receive({ type: "subscribed", channel: "room-1", seq: 2 }, { type: "channel_access_revoked", channel: "board" });
  assert.equal(ws.channel, "");
  ws1.take();
  const ws2 = await reconnected(ws, ws1);
  assert.equal(ws2.url.searchParams.get("channel"), null);
  assert.deepEqual(ws2.take(), [{ handler: "resume", user_after: null }, { handler: "subscribe", channel: "room-1", after: 2 }]);
});

test("whisper: sent only while subscribed and open, never queued; received by onWhisper; bad event names throw", async () => {
  const ws = client();
  const room = recorder();
  const subscription = ws.subscribe("room-1", room.handlers);
  assert.equal(subscription.whisper("typing", { typing: true }), false); // not connected
  const socket = opened(ws);
  socket.take();
  assert.equal(subscription.whisper("typing"), false); // not subscribed yet
  socket.receive({ type: "subscribed", channel: "room-1", seq: 0 });
  assert.equal(subscription.whisper("typing", { typing: true }), true);
  assert.deepEqual(socket.take(), [{ handler: "whisper", channel: "room-1", event: "typing", data: { typing: true } }]);
  for (const bad of ["", "x".repeat(65), "with space", 42, null]) {
    assert.throws(() => subscription.whisper(bad), TypeError);
  }
  const whisper = { type: "whisper", channel: "room-1", event: "typing", data: { typing: true }, user: { id: 3, username: "bob" } };
  socket.receive(whisper, { type: "whisper", channel: "elsewhere", event: "typing", data: null, user: null });
  socket.receive({ type: "whisper_error", channel: "room-1", event: "typing", status: 403, reason: "not_allowed", error: "No." });
  assert.deepEqual(room.names(), ["onSubscribed", "onWhisper", "onError"]);
  assert.deepEqual(room.calls[1][1], whisper);
  assert.equal(room.calls[2][1].kind, "whisper");
  subscription.unsubscribe();
  assert.equal(subscription.whisper("typing"), false);
});

test("presence: the member list by pages, joins, a second tab's leave, a leave, a sync", () => {
  const ws = client();
  const room = recorder({ presence: true });
  const subscription = ws.subscribe("room-1", room.handlers);
  const socket = opened(ws);
  socket.take();
  socket.receive({ type: "subscribed", channel: "room-1", seq: 0 });
  assert.deepEqual(socket.take(), [{ handler: "presence", channel: "room-1", after: null }]);
  const counts = { anonymous: 0, connections: 3 };
  socket.receive({
    type: "presence", event: "members", channel: "room-1", users: [{ id: 1, username: "ann" }], next: 1, user_count: 2, ...counts,
  });
  assert.deepEqual(socket.take(), [{ handler: "presence", channel: "room-1", after: 1 }]);
  socket.receive({
    type: "presence", event: "members", channel: "room-1", users: [{ id: 2, username: "bob", avatar: "b.png" }], next: null,
    user_count: 2, ...counts,
  });
  assert.deepEqual(subscription.members, [{ id: 1, username: "ann" }, { id: 2, username: "bob", avatar: "b.png" }]);
  socket.receive({ type: "presence", event: "join", channel: "room-1", user: { id: 3, username: "cy" }, user_count: 3, ...counts });
  // Bob closes one of his two tabs: still three users.
  socket.receive({ type: "presence", event: "leave", channel: "room-1", user: { id: 2, username: "bob" }, user_count: 3, ...counts });
  assert.deepEqual(subscription.members.map((m) => m.username), ["ann", "bob", "cy"]);
  socket.receive({ type: "presence", event: "leave", channel: "room-1", user: { id: 2, username: "bob" }, user_count: 2, ...counts });
  assert.deepEqual(subscription.members.map((m) => m.username), ["ann", "cy"]);
  assert.deepEqual(room.calls.at(-1).slice(0, 1).concat([room.calls.at(-1)[2]]), ["onPresence", ["ann", "cy"]]);
  socket.receive({ type: "presence", event: "sync", channel: "room-1", user: null, user_count: 1, ...counts });
  assert.deepEqual(socket.take(), [{ handler: "presence", channel: "room-1", after: null }]);
  socket.receive({ type: "presence", event: "members", channel: "room-1", users: [{ id: 1, username: "ann" }], next: null, user_count: 1, ...counts });
  assert.deepEqual(subscription.members.map((m) => m.username), ["ann"]);
});

test("a subscription without onPresence does not ask for members", () => {
  const ws = client();
  ws.subscribe("room-1", { onMessage() {} });
  const socket = opened(ws);
  socket.receive({ type: "subscribed", channel: "room-1", seq: 0 });
  assert.deepEqual(socket.take(), [{ handler: "resume", user_after: null }, { handler: "subscribe", channel: "room-1" }]);
});

test("switchChannel leaves every channel, as change_channel does on the server", () => {
  const ws = client({ channel: "lobby" });
  const room = recorder();
  const subscription = ws.subscribe("room-1", room.handlers);
  const socket = opened(ws);
  socket.receive({ type: "subscribed", channel: "room-1", seq: 0 });
  ws.switchChannel("python");
  socket.receive({ type: "channel_changed", channel: "python" });
  assert.deepEqual(room.names(), ["onSubscribed", "onClose"]);
  assert.deepEqual(room.calls[1][1], { channel: "room-1", reason: "channel_changed" });
  assert.equal(subscription.state, "closed");
});

test("nonsense from the server changes nothing and throws nothing", () => {
  const ws = client();
  const room = recorder();
  const subscription = ws.subscribe("room-1", room.handlers);
  const socket = opened(ws);
  socket.receive(
    { type: "subscribed", channel: 42, seq: 1 },
    { type: "subscribed", channel: "never-asked", seq: 1 },
    { type: "unsubscribed", channel: "room-1" }, // not asked for
    { type: "presence", event: "members", channel: "room-1", users: "nobody" },
    { type: "presence", event: "join", channel: "room-1", user: "bob" },
    { type: "channel_access_revoked" },
    "not json",
    "null",
    "[1, 2]",
  );
  assert.equal(subscription.state, "subscribing");
  socket.receive({ type: "subscribed", channel: "room-1", seq: "many" });
  assert.equal(subscription.state, "subscribed");
  assert.equal(subscription.lastSeq, null);
  assert.deepEqual(subscription.members, []);
});

test("an answer that never comes: the request is sent again after channelRetryMs", async () => {
  const ws = client({ channelRetryMs: 10 });
  ws.subscribe("room-1");
  const socket = opened(ws);
  socket.take();
  const frames = [];
  for (let waited = 0; frames.length < 2 && waited < 5000; waited += 10) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    frames.push(...socket.take());
  }
  assert.ok(frames.length >= 2, JSON.stringify(frames));
  assert.ok(frames.every((frame) => frame.handler === "subscribe" && frame.channel === "room-1"));
});

test("channel names are checked before anything is sent", () => {
  const ws = client();
  for (const bad of ["", "has space", "x".repeat(129), 7, null, undefined, "ünï"]) {
    assert.throws(() => ws.subscribe(bad), TypeError);
  }
  assert.equal(ws.channels.size, 0);
});

test("a handler that throws does not stop the others or the client", async () => {
  const ws = client();
  const reported = [];
  globalThis.reportError = (error) => reported.push(error.message); // the browser's reportError
  try {
    const seen = [];
    ws.subscribe("room-1", { onMessage: () => { throw new Error("bug in the page"); } });
    ws.subscribe("room-1", { onMessage: (message) => seen.push(message.seq) });
    const socket = opened(ws);
    socket.receive({ type: "subscribed", channel: "room-1", seq: 0 });
    socket.receive({ type: "m", stream: "room-1", seq: 1 }, { type: "m", stream: "room-1", seq: 2 });
    await tick();
    assert.deepEqual(seen, [1, 2]);
    assert.deepEqual(reported, ["bug in the page", "bug in the page"]);
  } finally {
    delete globalThis.reportError;
  }
});
