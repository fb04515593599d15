// Browser client for django-aws-api-gateway-websockets. A plain ES module: no build step, no CDN.
//
//   import { WebSocketClient } from "/static/django_aws_api_gateway_websockets/websocket-client.js";
//   const ws = WebSocketClient.fromElement("ws-config");     // {% websocket_config %} output
//   ws.addEventListener("chat", (e) => show(e.detail));      // typed events: the message's "type"
//   ws.connect();
//   ws.send({ handler: "send_chat", text: "hi" });           // queued while (re)connecting
//
// Every (re)connect fetches a fresh single-use token; reconnects back off exponentially with
// jitter; a 401/403 from the token endpoint stops the client ("unauthorized", {status, reason}:
// 401 "Not logged in." for an anonymous page or a user who logged out); a heartbeat keeps
// API Gateway's 10-minute idle timer from closing the socket, and the client reconnects on its own
// before API Gateway's 2-hour connection cap.
//
// Refusals: a browser never sees the HTTP status of a failed handshake (a 403 from $connect looks
// like a gateway that is down). After a handshake fails, the client POSTs the token it used to
// `refusalUrl` (default: `<tokenUrl>refusal/`, WebSocketRefusalView); the server says whether it
// refused that token, with the status and the reason. `maxRefusals` refusals in a row of the same
// kind stop the client with an `error` event {kind: "refused", status, reason, code, refusals}
// (429 is never final). Without a refusal URL the error says only that the handshake failed.
//
// History and resume (docs/history.md): messages sent with send_to_channel/send_to_user carry
// {"stream", "seq"}. The client delivers each stream's messages in sequence order, exactly once
// (duplicates dropped, early ones held back until the gap is filled), and after every reconnect
// sends {"handler": "resume", "channel", "after", "user_after"} so the server replays what was
// missed. When the server no longer has it, a "gap" event {stream, after, seq} tells the
// application to reload its state; delivery then continues after seq. The last number delivered
// per channel is kept in sessionStorage (per tab, keyed by the socket URL; option persistSeq), so
// a page reload resumes where the page left off; the user stream too when `userKey` names the
// user. Without sessionStorage (private modes that throw, storage disabled) it stays in memory.
// A long replay comes one page at a time: a "resumed" frame with "more" {stream: last seq sent}
// makes the client ask again from where it is, until it has caught up (an unanswered request,
// such as one refused by the server's message rate limit, is asked again after resumeRetryMs).
//
// Channels (docs/channels.md): one socket holds many subscriptions.
//
//   const room = ws.subscribe("room-42", { onMessage, onPresence, onWhisper });
//   room.whisper("typing", { typing: true });   // the channel's other subscribers, not stored
//   room.members;                                // [{id, username, ...}], kept up to date
//   room.unsubscribe();
//
// The connect query's `channel` is the first subscription (a single-channel client sends exactly
// what it always sent). After every reconnect the client resumes the first channel and
// subscribes again to every other one with the last number it delivered there ("after"), so
// each channel replays what it missed. One request per channel is in flight at a time (API
// Gateway may run a socket's frames concurrently: a subscribe and an unsubscribe racing could
// end in the wrong state), and an unsubscribe waits a tick, so a component that unmounts and
// mounts again at once (React's StrictMode) keeps its subscription without a round trip.
//
// Large messages (docs/large-messages.md): API Gateway takes at most 32 KB in a frame from the
// client and 128 KB in a message to it. A message larger than that travels as numbered parts,
// frames that start with U+001E, a one-line JSON header {"p": id, "i": index, "n": count, "b":
// UTF-8 bytes of the whole} and a piece of the message's text. The client puts the server's parts
// back together before anything else sees them: only whole messages reach the page (events and
// channel handlers alike); a message whose parts do not all arrive within partTimeoutMs of its
// first, that the server aborts, whose parts contradict each other, or whose socket closes
// midway (a resume replays it whole) is dropped whole with a "messagedropped" event. send()
// splits a message over one 32 KB frame into parts of 32,000 bytes of text each, up to
// maxMessageBytes (the server's WEBSOCKETS["max_message_bytes"]); a larger one throws. Parts
// leave paced (partsPerSecond after partsBurst: the server's rate limit counts each); a message
// whose parts had not all left when the socket closed is sent again, whole, after the reconnect.

const MINUTE = 60 * 1000;

export const DEFAULTS = {
  channel: "",
  backoffBaseMs: 500,
  backoffCapMs: 30 * 1000,
  queueLimit: 100,
  heartbeatMs: 5 * MINUTE, // API Gateway closes idle sockets after 10 minutes
  maxLifetimeMs: 115 * MINUTE, // API Gateway closes every socket after 2 hours
  heartbeat: { handler: "ping" }, // the view's built-in ping handler
  maxRefusals: 3, // the same refusal this many times in a row: stop (see refusalUrl)
  resume: true, // ask the server for missed sequenced messages after each reconnect
  gapWaitMs: 1000, // a sequence gap open this long (a message lost in flight): ask for a resume
  resumeRetryMs: 3000, // a continued resume (a paged replay) left unanswered this long: ask again
  persistSeq: true, // keep the last number per channel in sessionStorage: a reload resumes from it
  userKey: "", // identifies the user (e.g. their id): the user stream's number is kept too
  channelRetryMs: 5000, // a subscribe/unsubscribe left unanswered this long is sent again (5 times at most)
  maxMessageBytes: 1024 * 1024, // the server's WEBSOCKETS["max_message_bytes"]: larger sends throw
  partTimeoutMs: 30 * 1000, // a message in parts not complete this long after its first part is dropped
  // Parts leave at most this fast once partsBurst were sent at once (the page's messages count
  // too): the server's message rate limit (20/s, burst 40) counts every part, and a part it
  // refuses loses the whole message. 0: back to back.
  partsPerSecond: 20,
  partsBurst: 30,
  // refusalUrl: where to ask why a handshake failed; undefined: `<tokenUrl>refusal/`; null: never ask
};

const HANDSHAKE_FAILED =
  "The WebSocket handshake failed: refused by the server, or the gateway is unreachable (a browser is not told which).";

// Events the client itself emits; a message whose "type" is one of these is only a "message" event.
const LIFECYCLE = new Set([
  "open", "close", "message", "error", "unauthorized", "reconnecting", "dropped", "refused", "gap", "replay", "resume_gap",
  "resumed", "messagedropped",
]);
const USER_STREAM = "@user"; // the wire name of the user's direct-message stream
const STORAGE_PREFIX = "django_aws_api_gateway_websockets:seq:";
export const STORED_STREAMS_MAX = 50; // streams remembered per socket URL (the least recent dropped)
const CHANNEL_NAME = /^[A-Za-z0-9_.-]{1,128}$/; // protocol.is_valid_channel_name
const CLIENT_EVENT = /^[A-Za-z0-9_.:-]{1,64}$/; // a whisper's event name (docs/channels.md)
const CHANNEL_RETRIES = 5;
// Large messages in parts (docs/large-messages.md#protocol).
export const FRAME_BYTES = 32 * 1024; // API Gateway closes the socket (1009) on a larger client frame
export const PART_CHUNK_BYTES = 32000; // text per client part: with its header (< 768 bytes) within FRAME_BYTES
const PART_MARK = "\u001e"; // a frame is a part when, and only when, it starts with this
const PART_ID = /^[A-Za-z0-9_-]{1,64}$/;
const DROPPED_IDS_MAX = 256; // dropped message ids remembered per socket, so each is reported once
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

export function csrfTokenFromCookie(name = "csrftoken") {
  const match = document.cookie.split("; ").find((part) => part.startsWith(`${name}=`));
  return match ? decodeURIComponent(match.slice(name.length + 1)) : "";
}

export class WebSocketClient extends EventTarget {
  constructor(options) {
    super();
    if (!options?.url) throw new Error("WebSocketClient needs a url");
    this.options = { ...DEFAULTS, ...options };
    this.channel = this.options.channel;
    this.queue = [];
    this.socket = null;
    this.attempt = 0;
    this.stopped = true;
    this.generation = 0; // bumped by close(): a token fetch still in flight must not open a socket
    this.timers = {};
    this.refusals = 0; // consecutive refusals of the kind refusalKind
    this.refusalKind = "";
    this.handshakeFailures = 0; // consecutive handshakes that failed after a token was obtained
    this.refusalUrl = this._defaultRefusalUrl();
    this.streams = new Map(); // stream -> {last: seq delivered last, pending: Map(seq -> message)}
    this.channels = new Map(); // channel -> Channel: what subscribe() asked for, and where it stands
    this.incoming = new Map(); // message id -> the server's parts held so far (this socket's)
    this.droppedIds = new Set(); // ids of this socket's dropped messages: their late parts are ignored
    this.partCounter = 0; // numbers this client's messages in parts
    this.partPrefix = ""; // random, per client: ids stay unique across reloads and tabs
    this.outbox = []; // the page's messages in parts still leaving: {text, frames, sent}
    this.tokens = this.options.partsBurst; // frames that may leave now (refilled at partsPerSecond)
    this.tokensAt = 0;
    this.storage = this.options.persistSeq && this.options.resume ? openStorage() : null;
    this.storageKey = this.storage ? storageKey(this.options.url) : null;
    if (!this.storageKey) this.storage = null;
    this._restoreStreams();
  }

  // The sequence number of the last message delivered on a stream (a channel, or "@user").
  lastSeq(stream) {
    const state = this.streams.get(stream);
    return state ? state.last : null;
  }

  _defaultRefusalUrl() {
    if (this.options.refusalUrl !== undefined) return this.options.refusalUrl;
    const tokenUrl = this.options.tokenUrl;
    return tokenUrl ? `${tokenUrl.replace(/\/?$/, "/")}refusal/` : null;
  }

  // Build a client from the JSON that the {% websocket_config %} template tag renders.
  static fromElement(id, overrides = {}) {
    const element = document.getElementById(id);
    if (!element) throw new Error(`No element #${id} with the WebSocket configuration`);
    return new WebSocketClient({ ...JSON.parse(element.textContent), ...overrides });
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  // Start connecting; a no-op while the client is already running.
  connect() {
    if (!this.stopped) return this;
    this.stopped = false;
    this._open();
    return this;
  }

  // Send an object (JSON) or a string; queued (bounded) while not connected. Returns false when
  // the queue is full and the oldest queued message had to be dropped. A message over one frame
  // goes as parts; one over maxMessageBytes (UTF-8) throws a RangeError and nothing is sent.
  send(message) {
    const frame = typeof message === "string" ? message : JSON.stringify(message);
    if (typeof frame !== "string") throw new TypeError("send() takes an object (sent as JSON) or a string");
    const bytes = utf8Length(frame);
    if (bytes > this.options.maxMessageBytes) {
      throw new RangeError(
        `Message too large: ${bytes} bytes (UTF-8); the limit is ${this.options.maxMessageBytes} (maxMessageBytes, the server's WEBSOCKETS["max_message_bytes"]).`,
      );
    }
    if (this.isOpen) {
      this._transmit(this.socket, frame);
      return true;
    }
    this.queue.push(frame);
    if (this.queue.length > this.options.queueLimit) {
      const dropped = this.queue.shift();
      this._emit("dropped", { frame: dropped });
      return false;
    }
    return true;
  }

  // Move this connection to another channel now, and use it for every later reconnect.
  switchChannel(name) {
    this.channel = name;
    this.send({ handler: "change_channel", channel: name });
  }

  // Hold `channel` on this socket as well as the others (docs/channels.md); `handlers` are
  // called for it: onSubscribed, onMessage (its sequenced messages, in order, once), onPresence
  // (asks for the member list), onWhisper, onError (a refused subscribe or whisper) and onClose
  // (it ended without unsubscribe(): refused, revoked, channel_changed). Kept across reconnects
  // until unsubscribe(); subscribing twice to a channel shares one server subscription.
  subscribe(channel, handlers = {}) {
    if (typeof channel !== "string" || !CHANNEL_NAME.test(channel)) {
      throw new TypeError(`Not a channel name: ${JSON.stringify(channel)} (letters, digits, _ - ., 128 at most)`);
    }
    let state = this.channels.get(channel);
    if (!state) {
      state = new Channel(channel);
      this.channels.set(channel, state);
    }
    clearTimeout(state.releaseTimer);
    state.releaseTimer = null;
    state.wanted = true;
    const subscription = new ChannelSubscription(this, state, handlers || {});
    state.handles.add(subscription);
    const wantsPresence = Boolean(handlers?.onPresence || handlers?.presence);
    if (state.state === "subscribed") {
      queueMicrotask(() => subscription._call("onSubscribed", { channel, seq: this.lastSeq(channel) }));
      if (wantsPresence) this._requestMembers(state, null);
    }
    if (wantsPresence) state.presence = true;
    this._syncChannel(state);
    return subscription;
  }

  // Stop for good: no reconnect, no heartbeat, queue discarded.
  close() {
    this.stopped = true;
    this.generation += 1;
    this._clearTimers();
    this.queue = [];
    this._detach("client closed");
  }

  // --- internals ------------------------------------------------------------------

  async _open() {
    this._clearTimers();
    const generation = this.generation;
    let token = "";
    if (this.options.tokenUrl) {
      try {
        token = await this._fetchToken();
      } catch (error) {
        if (generation !== this.generation) return;
        if (error.status === 401 || error.status === 403) {
          this.stopped = true;
          this._emit("unauthorized", { status: error.status, reason: error.reason || error.message });
          return;
        }
        this._emit("error", { kind: "token", status: error.status || null, reason: error.message, error });
        this._scheduleReconnect();
        return;
      }
    }
    if (this.stopped || generation !== this.generation) return;
    const url = new URL(this.options.url);
    if (token) url.searchParams.set("ws_token", token);
    if (this.channel) url.searchParams.set("channel", this.channel);
    const socket = new WebSocket(url.toString());
    socket._wsToken = token;
    socket._opened = false;
    this.socket = socket;
    socket.addEventListener("open", () => this._onOpen(socket));
    socket.addEventListener("message", (event) => this._onMessage(event));
    socket.addEventListener("close", (event) => this._onClose(socket, event));
    socket.addEventListener("error", () => {
      // Before open this is a failed handshake: _onClose reports it, with the reason when known.
      if (socket._opened && socket === this.socket) {
        this._emit("error", { kind: "socket", status: null, reason: "WebSocket error on an open connection" });
      }
    });
  }

  // The handshake failed (the socket closed without opening): ask the server whether it refused
  // this token and why; stop after maxRefusals refusals of the same kind in a row.
  async _handshakeFailed(token, event) {
    this.handshakeFailures += 1;
    const generation = this.generation;
    let refusal = null;
    if (this.refusalUrl && token) refusal = await this._askRefusal(token);
    if (this.stopped || generation !== this.generation) return;
    if (!refusal) {
      this.refusals = 0;
      this.refusalKind = "";
      this._emit("error", {
        kind: "handshake", status: null, reason: HANDSHAKE_FAILED, code: event.code, failures: this.handshakeFailures,
      });
      this._scheduleReconnect();
      return;
    }
    const kind = `${refusal.status}:${refusal.code || refusal.reason}`;
    this.refusals = kind === this.refusalKind ? this.refusals + 1 : 1;
    this.refusalKind = kind;
    const detail = { kind: "refused", status: refusal.status, reason: refusal.reason, code: refusal.code, refusals: this.refusals };
    this._emit("refused", detail);
    if (refusal.status !== 429 && this.refusals >= this.options.maxRefusals) {
      this.stopped = true;
      this._clearTimers();
      this._emit("error", { ...detail, final: true });
      return;
    }
    this._emit("error", { ...detail, final: false });
    this._scheduleReconnect();
  }

  async _askRefusal(token) {
    try {
      const response = await fetch(this.refusalUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "X-CSRFToken": this.options.csrfToken || csrfTokenFromCookie(),
          Accept: "application/json",
          "Content-Type": "application/json",
        },
        body: JSON.stringify({ token }),
      });
      if (response.status === 404 || response.status === 405) {
        this.refusalUrl = null; // not wired: stop asking
        return null;
      }
      if (!response.ok) return null;
      const answer = await response.json();
      return answer?.refused ? answer : null;
    } catch (_error) {
      return null;
    }
  }

  async _fetchToken() {
    const response = await fetch(this.options.tokenUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": this.options.csrfToken || csrfTokenFromCookie(), Accept: "application/json" },
    });
    if (!response.ok) {
      const error = new Error(`Token endpoint answered ${response.status}`);
      error.status = response.status;
      // The endpoint's reason ({"error": "Not logged in."}) when it answered JSON.
      error.reason = await response.json().then((body) => (typeof body?.error === "string" ? body.error : ""), () => "");
      throw error;
    }
    return (await response.json()).token;
  }

  _onOpen(socket) {
    if (socket !== this.socket) return;
    socket._opened = true;
    this.attempt = 0;
    this.refusals = 0;
    this.refusalKind = "";
    this.handshakeFailures = 0;
    this._sendResume(socket);
    for (const state of [...this.channels.values()]) this._syncChannel(state);
    while (this.queue.length && this.isOpen) this._transmit(socket, this.queue.shift());
    this.timers.heartbeat = setInterval(() => {
      if (this.isOpen) socket.send(JSON.stringify(this.options.heartbeat));
    }, this.options.heartbeatMs);
    // Reconnect on our own terms before API Gateway's cap cuts the socket.
    this.timers.lifetime = setTimeout(() => {
      this._detach("lifetime");
      this._scheduleReconnect(0);
    }, this.options.maxLifetimeMs);
    this._emit("open", { channel: this.channel });
  }

  // One message of the page's: one frame when it fits, else its parts, back to back (the
  // socket buffers them in order; a socket that closes midway loses the rest with it).
  _transmit(socket, frame) {
    if (frame.length * 3 <= FRAME_BYTES && !frame.startsWith(PART_MARK)) {
      this._sendOne(socket, frame); // fits for sure (3 bytes per UTF-16 unit at most): no encoding
      return;
    }
    const bytes = utf8.encode(frame);
    if (bytes.length <= FRAME_BYTES && !frame.startsWith(PART_MARK)) {
      this._sendOne(socket, frame);
      return;
    }
    const chunks = splitUtf8(bytes, PART_CHUNK_BYTES);
    const id = this._partId();
    const frames = chunks.map((chunk, index) => {
      const header = JSON.stringify({ p: id, i: index, n: chunks.length, b: bytes.length });
      return `${PART_MARK}${header}\n${chunk}`;
    });
    this.outbox.push({ text: frame, frames, sent: 0 });
    this._pump(socket);
  }

  // A message in one frame leaves at once; it counts against the pace of the parts.
  _sendOne(socket, frame) {
    socket.send(frame);
    if (this.options.partsPerSecond > 0) {
      this._refill();
      this.tokens = Math.max(0, this.tokens - 1);
    }
  }

  // Frames allowed to leave now: partsBurst at once, then partsPerSecond.
  _refill() {
    const now = Date.now();
    const rate = this.options.partsPerSecond;
    if (this.tokensAt) this.tokens = Math.min(this.options.partsBurst, this.tokens + ((now - this.tokensAt) * rate) / 1000);
    this.tokensAt = now;
  }

  // Send what the pace allows of the outbox, in order; come back when the next part may leave.
  _pump(socket) {
    clearTimeout(this.timers.pump);
    this.timers.pump = null;
    const paced = this.options.partsPerSecond > 0;
    if (paced) this._refill();
    while (this.outbox.length && socket === this.socket && this.isOpen && (!paced || this.tokens >= 1)) {
      const entry = this.outbox[0];
      socket.send(entry.frames[entry.sent]);
      entry.sent += 1;
      if (paced) this.tokens -= 1;
      if (entry.sent === entry.frames.length) this.outbox.shift();
    }
    if (this.outbox.length && socket === this.socket && this.isOpen) {
      const wait = Math.ceil(((1 - this.tokens) * 1000) / this.options.partsPerSecond);
      this.timers.pump = setTimeout(() => this._pump(socket), Math.max(1, wait));
    }
  }

  // The socket closed with parts still to leave: those messages go again, whole, on the next one
  // (the server forgets the parts of a connection that went away).
  _requeueOutbox() {
    const unsent = this.outbox.map((entry) => entry.text);
    this.outbox = [];
    if (!this.stopped) this.queue.unshift(...unsent);
  }

  _partId() {
    this.partCounter += 1;
    if (!this.partPrefix) {
      const random = new Uint8Array(6);
      if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(random);
      else for (let i = 0; i < random.length; i += 1) random[i] = Math.floor(Math.random() * 256);
      this.partPrefix = `c${[...random].map((n) => n.toString(36).padStart(2, "0")).join("")}`;
    }
    return `${this.partPrefix}-${this.partCounter.toString(36)}`;
  }

  _onMessage(event) {
    if (typeof event.data === "string" && event.data.startsWith(PART_MARK)) {
      const whole = this._part(event.data);
      if (whole !== null) this._handleText(whole);
      return;
    }
    this._handleText(event.data);
  }

  // A server part: held until its message is whole (then returns the text), else null.
  _part(frame) {
    const newline = frame.indexOf("\n");
    let header = null;
    try {
      header = JSON.parse(newline < 0 ? frame.slice(1) : frame.slice(1, newline));
    } catch (_error) {
      // reported below
    }
    const id = header && typeof header.p === "string" && PART_ID.test(header.p) ? header.p : null;
    if (!id) {
      this._emit("messagedropped", { id: null, reason: "bad_part", received: 0, parts: null, bytes: null });
      return null;
    }
    const { i: index, n: count, b: bytes } = header;
    if (this.droppedIds.has(id)) return null; // the rest of a message already dropped: said once
    const incoming = this.incoming;
    let message = incoming.get(id);
    const refuse = (reason) => {
      if (message) this._dropIncoming(id, reason);
      else this._droppedPart(id, reason, Number.isInteger(count) ? count : null, Number.isInteger(bytes) ? bytes : null);
      return null;
    };
    if (header.x) return refuse("aborted");
    const valid =
      newline >= 0 && Number.isInteger(count) && Number.isInteger(bytes) && Number.isInteger(index) &&
      bytes >= 0 && count >= 1 && count <= Math.max(1, bytes) && index >= 0 && index < count;
    if (!valid || (message && (message.parts !== count || message.bytes !== bytes))) return refuse("bad_part");
    if (bytes > this.options.maxMessageBytes) return refuse("too_large");
    if (!message) {
      message = { parts: count, bytes, chunks: new Map(), received: 0, timer: null };
      message.timer = setTimeout(() => this._dropIncoming(id, "timeout"), this.options.partTimeoutMs);
      incoming.set(id, message);
    }
    if (message.chunks.has(index)) return null; // a repeated part
    const chunk = frame.slice(newline + 1);
    message.chunks.set(index, chunk);
    message.received += utf8Length(chunk);
    if (message.received > message.bytes) return refuse("bad_part");
    if (message.chunks.size < message.parts) return null;
    if (message.received !== message.bytes) return refuse("bad_part");
    clearTimeout(message.timer);
    incoming.delete(id);
    let text = "";
    for (let i = 0; i < message.parts; i += 1) text += message.chunks.get(i);
    return text;
  }

  // Forget a message in parts: never delivered in part.
  _dropIncoming(id, reason) {
    const message = this.incoming.get(id);
    if (!message) return;
    clearTimeout(message.timer);
    this.incoming.delete(id);
    this._droppedPart(id, reason, message.parts, message.bytes, message.chunks.size);
  }

  // Report a dropped message once: its later parts (on this socket) are ignored.
  _droppedPart(id, reason, parts, bytes, received = 0) {
    const dropped = this.droppedIds;
    dropped.add(id);
    if (dropped.size > DROPPED_IDS_MAX) dropped.delete(dropped.values().next().value);
    this._emit("messagedropped", { id, reason, received, parts, bytes });
  }

  // The socket is gone: its messages in parts cannot complete (a resume replays sequenced ones whole).
  _dropAllIncoming(reason) {
    for (const id of [...this.incoming.keys()]) this._dropIncoming(id, reason);
    this.droppedIds.clear(); // ids are per connection
  }

  _handleText(text) {
    let data = text;
    try {
      data = JSON.parse(text);
    } catch (_error) {
      // Not JSON: delivered as the raw string.
    }
    if (data && data.type === "replay" && Array.isArray(data.messages)) {
      for (const message of data.messages) this._sequenced(message);
    } else if (data && data.type === "resume_gap" && typeof data.stream === "string") {
      this._gap(data);
    } else if (data && data.type === "resumed" && data.streams && typeof data.streams === "object") {
      // Where each stream stands: the starting point of a stream this client has not seen yet.
      for (const [stream, seq] of Object.entries(data.streams)) {
        if (Number.isInteger(seq) && !this.streams.has(stream)) {
          this.streams.set(stream, { last: seq, pending: new Map(), timer: null });
          this._storeSeq(stream, seq);
        }
      }
      this._emit("resumed", data.streams);
      this._continueResume(data.more);
    } else if (data && typeof data.stream === "string" && Number.isInteger(data.seq)) {
      this._sequenced(data);
    } else if (data && data.type === "part_received" && typeof data.p === "string") {
      // A two-way route's answer to one of our parts: nothing for the page.
    } else {
      if (data && typeof data.type === "string" && typeof data.channel === "string") this._channelFrame(data);
      this._deliver(data);
    }
  }

  _deliver(data) {
    this._emit("message", data);
    if (data && typeof data.type === "string" && !LIFECYCLE.has(data.type)) this._emit(data.type, data);
    // A subscribed channel's handles; a replay that a subscribe's "after" asked for comes before its answer.
    const state = data && typeof data.stream === "string" ? this.channels.get(data.stream) : undefined;
    if (state && (state.state === "subscribed" || state.inFlight === "subscribe")) state.notify("onMessage", data);
  }

  // A numbered message: deliver it in order, once; hold it while an earlier one is missing.
  _sequenced(message) {
    let state = this.streams.get(message.stream);
    if (!state) {
      state = { last: message.seq - 1, pending: new Map(), timer: null };
      this.streams.set(message.stream, state);
    }
    if (message.seq <= state.last || state.pending.has(message.seq)) return; // a duplicate
    state.pending.set(message.seq, message);
    this._drain(message.stream, state);
  }

  _drain(stream, state) {
    while (state.pending.has(state.last + 1)) {
      const next = state.pending.get(state.last + 1);
      state.pending.delete(state.last + 1);
      state.last += 1;
      this._storeSeq(stream, state.last); // before the application sees it: a reload never replays it
      this._deliver(next);
    }
    clearTimeout(state.timer);
    state.timer = null;
    if (state.pending.size) {
      // Something in between is missing: it may still be on its way (another sender's
      // message); if not, ask the server for it.
      state.timer = setTimeout(() => {
        state.timer = null;
        // A paged replay under way brings the missing ones (or the next page's answer re-arms this).
        if (state.pending.size && this.isOpen && !this.timers.resume) this._sendResume(this.socket, stream);
      }, this.options.gapWaitMs);
    }
  }

  // The server no longer has what this client missed: skip to its current number.
  _gap(data) {
    const state = this.streams.get(data.stream) || { last: 0, pending: new Map(), timer: null };
    this.streams.set(data.stream, state);
    const after = state.last;
    if (Number.isInteger(data.seq) && data.seq > state.last) state.last = data.seq;
    else if (Number.isInteger(data.seq) && data.seq < data.after) state.last = data.seq; // the history was reset
    for (const seq of [...state.pending.keys()]) if (seq <= state.last) state.pending.delete(seq);
    this._storeSeq(data.stream, state.last);
    this._emit("gap", {
      stream: data.stream,
      after,
      seq: state.last,
      firstKept: data.first_kept ?? null,
      reason: data.reason ?? "expired", // "too_large": that one message could not be replayed
    });
    this._drain(data.stream, state);
  }

  // Ask for what was missed on the connect channel and the user stream (by default: the other
  // channels resume through their subscribe's "after"), or on some streams (a name or a list);
  // for a stream not seen yet, "after": null asks where it stands. Only the connect channel:
  // the 5.0 form {channel, after}, which a single-channel client always sent; several channels:
  // {channels: {name: after}}.
  _sendResume(socket, only) {
    if (!this.options.resume || !socket || socket.readyState !== WebSocket.OPEN) return;
    const streams = only === undefined ? [this.channel, USER_STREAM] : Array.isArray(only) ? only : [only];
    const channels = streams.filter((stream) => stream && stream !== USER_STREAM && this._holds(stream));
    const user = streams.includes(USER_STREAM);
    if (!channels.length && !user) return; // nothing held any more
    const message = { handler: "resume" };
    if (channels.length === 1 && channels[0] === this.channel) {
      message.channel = this.channel;
      message.after = this.lastSeq(this.channel);
    } else if (channels.length) {
      message.channels = Object.fromEntries(channels.map((channel) => [channel, this.lastSeq(channel)]));
    }
    if (user) message.user_after = this.lastSeq(USER_STREAM);
    socket.send(JSON.stringify(message));
  }

  // Whether the server holds `channel` for this socket (as far as the client knows).
  _holds(channel) {
    if (channel === this.channel) return true;
    return this.channels.get(channel)?.state === "subscribed";
  }

  // The server replays one page per resume; "more" names the streams it has not finished.
  // Ask again from what was delivered (not from the server's cursor: a page lost in flight is
  // then asked for again). A request left unanswered is repeated, a few times.
  _continueResume(more) {
    clearTimeout(this.timers.resume);
    this.timers.resume = null;
    const streams = more && typeof more === "object" ? Object.keys(more) : [];
    const pending = streams.filter((s) => s === USER_STREAM || (s && this._holds(s)));
    if (!pending.length) {
      this.resumeRetries = 0;
      // Caught up: a gap still open (a message lost in flight) gets its timer again.
      for (const [stream, state] of this.streams) if (state.pending.size && !state.timer) this._drain(stream, state);
      return;
    }
    const ask = () => {
      this.timers.resume = null;
      if (!this.isOpen || (this.resumeRetries || 0) > 5) return;
      this.resumeRetries = (this.resumeRetries || 0) + 1;
      this.timers.resume = setTimeout(ask, this.options.resumeRetryMs * this.resumeRetries);
      this._sendResume(this.socket, pending);
    };
    this.resumeRetries = 0;
    ask();
  }

  _onClose(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    this._clearTimers();
    this._channelsLost();
    this._dropAllIncoming("closed");
    this._requeueOutbox();
    this._emit("close", { code: event.code, reason: event.reason });
    if (this.stopped) return;
    if (!socket._opened) this._handshakeFailed(socket._wsToken, event);
    else this._scheduleReconnect();
  }

  // Close the current socket ourselves; its late close event must not trigger a reconnect.
  _detach(reason) {
    const socket = this.socket;
    this.socket = null;
    this._clearTimers();
    this._channelsLost();
    this._dropAllIncoming("closed");
    this._requeueOutbox();
    if (socket) {
      socket.close(1000, reason);
      this._emit("close", { code: 1000, reason });
    }
  }

  _scheduleReconnect(delay) {
    if (this.stopped) return;
    if (delay === undefined) {
      const ceiling = Math.min(this.options.backoffCapMs, this.options.backoffBaseMs * 2 ** this.attempt);
      delay = ceiling / 2 + Math.random() * (ceiling / 2); // "equal jitter"
      this.attempt += 1;
    }
    this._emit("reconnecting", { delay, attempt: this.attempt });
    this.timers.reconnect = setTimeout(() => this._open(), delay);
  }

  _clearTimers() {
    for (const state of this.streams ? this.streams.values() : []) {
      clearTimeout(state.timer);
      state.timer = null;
    }
    clearInterval(this.timers.heartbeat);
    clearTimeout(this.timers.lifetime);
    clearTimeout(this.timers.reconnect);
    clearTimeout(this.timers.resume);
    clearTimeout(this.timers.pump);
    this.timers = {};
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // --- channels (subscribe) -------------------------------------------------------------

  // Bring the server's side of one channel to what the page wants: one request at a time (its
  // answer, or channelRetryMs without one, lets the next go).
  _syncChannel(state) {
    if (this.channels.get(state.name) !== state) return;
    const open = this.isOpen && this.socket._opened;
    if (!state.wanted && (!open || (state.state === "idle" && !state.inFlight))) {
      // Not held on this socket: nothing to undo there; the next connect will not ask for it.
      // (A subscribe in flight is answered first, then undone.)
      if (state.name === this.channel) this.channel = "";
      this._dropChannel(state);
      return;
    }
    if (!open || state.inFlight) return;
    if (state.wanted && state.state === "idle" && state.name === this.channel) {
      this._channelSubscribed(state, this.lastSeq(state.name)); // the connect query's channel: held since $connect
    } else if (state.wanted && state.state === "idle") {
      const message = { handler: "subscribe", channel: state.name };
      const last = this.options.resume ? this.lastSeq(state.name) : null;
      if (last !== null) message.after = last; // replay what was missed (a reconnect, a reload)
      this._channelRequest(state, "subscribe", message);
    } else if (!state.wanted && state.state === "subscribed") {
      if (state.name === this.channel) this.channel = ""; // not joined again on reconnect
      this._channelRequest(state, "unsubscribe", { handler: "unsubscribe", channel: state.name });
    }
  }

  _channelRequest(state, kind, message) {
    state.inFlight = kind;
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(() => {
      state.retryTimer = null;
      state.inFlight = null;
      state.retries += 1;
      if (state.retries > CHANNEL_RETRIES) {
        state.notify("onError", { kind, channel: state.name, status: null, reason: "no_answer", error: "No answer." });
        return;
      }
      this._syncChannel(state);
    }, this.options.channelRetryMs);
    this.socket.send(JSON.stringify(message));
  }

  _answered(state) {
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    state.inFlight = null;
    state.retries = 0;
  }

  _channelSubscribed(state, seq, more) {
    state.state = "subscribed";
    if (Number.isInteger(seq) && !this.streams.has(state.name)) {
      // Where the channel stands: its later messages are delivered, earlier ones are not replayed.
      this.streams.set(state.name, { last: seq, pending: new Map(), timer: null });
      this._storeSeq(state.name, seq);
    }
    if (Number.isInteger(more)) this._continueResume({ [state.name]: more });
    state.notify("onSubscribed", { channel: state.name, seq: this.lastSeq(state.name) });
    if (state.presence && state.wanted) this._requestMembers(state, null);
  }

  // A subscription ended: forget it (and its numbers, so a later subscribe starts afresh).
  _dropChannel(state, forgetStream = true) {
    clearTimeout(state.retryTimer);
    clearTimeout(state.releaseTimer);
    state.state = "closed";
    state.members.clear();
    if (this.channels.get(state.name) === state) this.channels.delete(state.name);
    if (forgetStream && state.name !== this.channel) this._forgetStream(state.name);
  }

  // The server ended a subscription (refused, revoked, left by change_channel): tell its handles.
  _channelEnded(state, detail) {
    this._dropChannel(state, false);
    state.notify("onClose", detail);
    for (const handle of state.handles) handle.closed = true;
    state.handles.clear();
  }

  _channelsLost() {
    for (const state of this.channels.values()) {
      clearTimeout(state.retryTimer);
      state.retryTimer = null;
      state.inFlight = null;
      state.retries = 0;
      if (state.state !== "closed") state.state = "idle";
    }
  }

  // The last handle let go: unsubscribe after this tick (a remount subscribes again first).
  _release(state) {
    clearTimeout(state.releaseTimer);
    state.releaseTimer = setTimeout(() => {
      state.releaseTimer = null;
      if (state.handles.size) return;
      state.wanted = false;
      this._syncChannel(state);
    }, 0);
  }

  _requestMembers(state, after) {
    if (!this.isOpen || state.state !== "subscribed") return;
    state.membersAfter = after;
    this.socket.send(JSON.stringify({ handler: "presence", channel: state.name, after }));
  }

  _whisper(state, event, data) {
    if (typeof event !== "string" || !CLIENT_EVENT.test(event)) {
      throw new TypeError(`Not an event name: ${JSON.stringify(event)} (1-64 letters, digits, _ - . :)`);
    }
    // Ephemeral: never queued (a typing indicator delivered a minute late is wrong).
    if (!this.isOpen || state.state !== "subscribed" || this.channels.get(state.name) !== state) return false;
    // Through _transmit: a whisper over one frame goes as parts (the server answers whisper_error
    // too_large) instead of a frame API Gateway would close the socket for.
    this._transmit(this.socket, JSON.stringify({ handler: "whisper", channel: state.name, event, data: data ?? null }));
    return true;
  }

  // A frame about one channel (docs/channels.md): answers, presence, whispers, revocations.
  _channelFrame(data) {
    const state = this.channels.get(data.channel);
    if (data.type === "channel_changed") {
      // change_channel left every channel and joined this one.
      for (const other of [...this.channels.values()]) {
        if (other.name !== data.channel) this._channelEnded(other, { channel: other.name, reason: "channel_changed" });
      }
      if (state && state.state !== "subscribed") {
        this._answered(state);
        this._channelSubscribed(state, this.lastSeq(state.name));
      }
      return;
    }
    if (data.type === "channel_access_revoked") {
      this._revoked(data, state);
      return;
    }
    if (!state) return;
    switch (data.type) {
      case "subscribed":
        if (state.inFlight !== "subscribe") return; // a two-way route's copy of an answer already read
        this._answered(state);
        this._channelSubscribed(state, data.seq, data.more);
        this._syncChannel(state); // let go meanwhile: unsubscribe now
        break;
      case "subscribe_error":
        if (state.inFlight !== "subscribe") return;
        this._answered(state);
        state.notify("onError", { kind: "subscribe", ...errorDetail(data) });
        this._channelEnded(state, { channel: state.name, reason: "refused", status: data.status ?? null });
        break;
      case "unsubscribed":
      case "unsubscribe_error":
        if (state.inFlight !== "unsubscribe") return;
        this._answered(state);
        state.state = "idle";
        if (state.wanted) this._syncChannel(state); // subscribed again meanwhile
        else this._dropChannel(state);
        break;
      case "presence":
        this._presence(state, data);
        break;
      case "whisper":
        state.notify("onWhisper", data);
        break;
      case "whisper_error":
        state.notify("onError", { kind: "whisper", event: data.event ?? null, ...errorDetail(data) });
        break;
    }
  }

  // The channel rules no longer admit this user to a channel: its subscription is gone. The
  // connect channel of a socket that held no other one: the server closes the socket and a
  // reconnect would only be refused, so the client stops (as after a final refusal).
  _revoked(data, state) {
    const detail = { channel: data.channel, reason: "revoked", message: data.reason ?? "" };
    if (state) this._channelEnded(state, detail);
    if (data.channel !== this.channel) return;
    this.channel = "";
    if (this.channels.size === 0) {
      this.stopped = true;
      this.generation += 1;
      this._detach("channel access revoked");
      this._emit("error", {
        kind: "revoked", status: 403, reason: data.reason ?? "", channel: data.channel, final: true,
      });
    }
  }

  // Members from "members" pages (asked for on subscribe, page by page), join and leave events
  // (a leave removes the user once the channel's user_count says they are gone: a user with two
  // tabs leaves twice), and "sync" (many left at once: the list is asked for again).
  _presence(state, data) {
    const members = state.members;
    if (data.event === "members" && Array.isArray(data.users)) {
      if (state.membersAfter === null) members.clear();
      for (const user of data.users) if (user && user.id !== undefined) members.set(user.id, user);
      state.membersAfter = undefined;
      if (data.next !== null && data.next !== undefined) this._requestMembers(state, data.next);
    } else if (data.event === "join" && data.user && data.user.id !== undefined) {
      members.set(data.user.id, data.user);
    } else if (data.event === "leave" && data.user && data.user.id !== undefined) {
      if (!Number.isInteger(data.user_count) || data.user_count < members.size) members.delete(data.user.id);
    } else if (data.event === "sync") {
      this._requestMembers(state, null);
    }
    state.notify("onPresence", data);
  }

  _forgetStream(stream) {
    const state = this.streams.get(stream);
    if (state) clearTimeout(state.timer);
    this.streams.delete(stream);
    const name = this.storage ? this._storedName(stream) : null;
    if (!name) return;
    const stored = this._readStored();
    if (!(name in stored)) return;
    delete stored[name];
    try {
      this.storage.setItem(this.storageKey, JSON.stringify(stored));
    } catch (_error) {
      this.storage = null;
    }
  }

  // --- sequence numbers kept across page reloads (sessionStorage) -----------------------

  // The name a stream is stored under: channels as they are; the user stream only with userKey.
  _storedName(stream) {
    if (stream !== USER_STREAM) return stream;
    return this.options.userKey ? `${USER_STREAM}#${this.options.userKey}` : null;
  }

  _readStored() {
    try {
      const value = JSON.parse(this.storage.getItem(this.storageKey) || "{}");
      return value && typeof value === "object" && !Array.isArray(value) ? value : {};
    } catch (_error) {
      return {}; // unreadable, or written by something else: start afresh
    }
  }

  _restoreStreams() {
    if (!this.storage) return;
    const stored = this._readStored();
    const names = this.options.userKey ? [USER_STREAM] : [];
    for (const name of Object.keys(stored)) if (!name.startsWith(`${USER_STREAM}#`)) names.push(name);
    for (const stream of names) {
      const entry = stored[this._storedName(stream)];
      const seq = Array.isArray(entry) ? entry[0] : null;
      if (Number.isInteger(seq) && seq >= 0) this.streams.set(stream, { last: seq, pending: new Map(), timer: null });
    }
  }

  // {name: [last seq, when]}, the STORED_STREAMS_MAX most recently updated streams.
  _storeSeq(stream, seq) {
    const name = this.storage ? this._storedName(stream) : null;
    if (!name) return;
    const stored = this._readStored();
    stored[name] = [seq, Date.now()];
    const names = Object.keys(stored);
    if (names.length > STORED_STREAMS_MAX) {
      const when = (key) => (Array.isArray(stored[key]) && Number.isFinite(stored[key][1]) ? stored[key][1] : 0);
      names.sort((a, b) => when(b) - when(a));
      for (const old of names.slice(STORED_STREAMS_MAX)) delete stored[old];
    }
    try {
      this.storage.setItem(this.storageKey, JSON.stringify(stored));
    } catch (_error) {
      this.storage = null; // full, or refused (private mode): in memory from now on
    }
  }
}

// What subscribe() returns: one page's hold on a channel. Several handles on one channel share
// its server subscription; the last one to unsubscribe() ends it.
export class ChannelSubscription {
  constructor(client, state, handlers) {
    this.client = client;
    this.channel = state.name;
    this.handlers = handlers;
    this.closed = false;
    this._state = state;
  }

  // "subscribing" (asked, or waiting for the socket), "subscribed", or "closed".
  get state() {
    if (this.closed) return "closed";
    return this._state.state === "subscribed" ? "subscribed" : "subscribing";
  }

  // The channel's members ({id, username, ...} from the server's presence hook), when a
  // handle asked for presence (onPresence or presence: true); [] before the list arrived.
  get members() {
    return this.closed ? [] : [...this._state.members.values()];
  }

  // The number of the last message delivered on this channel, null before any.
  get lastSeq() {
    return this.client.lastSeq(this.channel);
  }

  // Send a client event to the channel's other subscribers (where the server allows it on this
  // channel). Not queued: false when the socket is not open or the channel not subscribed yet.
  whisper(event, data = null) {
    if (this.closed) return false;
    return this.client._whisper(this._state, event, data);
  }

  // Ask the server for the member list again (onPresence is called as the pages arrive).
  refreshMembers() {
    if (!this.closed) this.client._requestMembers(this._state, null);
  }

  unsubscribe() {
    if (this.closed) return;
    this.closed = true;
    this._state.handles.delete(this);
    if (this._state.handles.size === 0) this.client._release(this._state);
  }

  _call(name, detail) {
    const handler = this.closed && name !== "onClose" ? null : this.handlers[name];
    if (typeof handler !== "function") return;
    try {
      handler.call(this, detail, this.members);
    } catch (error) {
      // Reported as an uncaught listener error is (window "error", the console); the client
      // goes on with the other handlers and the next frame.
      (globalThis.reportError || console.error)(error);
    }
  }
}

// A channel the page subscribed to: the server's side as far as the client knows.
class Channel {
  constructor(name) {
    this.name = name;
    this.handles = new Set();
    this.wanted = true;
    this.state = "idle"; // idle (not held on this socket) | subscribed | closed
    this.inFlight = null; // "subscribe" | "unsubscribe": sent, not answered yet
    this.retries = 0;
    this.retryTimer = null;
    this.releaseTimer = null;
    this.presence = false; // a handle wants the member list
    this.members = new Map(); // user id -> member info
    this.membersAfter = undefined; // the "after" of the member page asked for
  }

  notify(name, detail) {
    for (const handle of [...this.handles]) handle._call(name, detail);
  }
}

// UTF-8 bytes of a string without encoding it (a lone surrogate counts as U+FFFD, 3 bytes, as
// TextEncoder and WebSocket.send encode it).
export function utf8Length(text) {
  let bytes = 0;
  for (let i = 0; i < text.length; i += 1) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i += 1;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

// Cut UTF-8 bytes into strings of at most `size` bytes each, never inside a character.
function splitUtf8(bytes, size) {
  const chunks = [];
  let start = 0;
  while (start < bytes.length) {
    let end = Math.min(start + size, bytes.length);
    while (end < bytes.length && (bytes[end] & 0xc0) === 0x80) end -= 1; // back to a character's first byte
    chunks.push(utf8Decoder.decode(bytes.subarray(start, end)));
    start = end;
  }
  return chunks.length ? chunks : [""];
}

function errorDetail(data) {
  return {
    channel: typeof data.channel === "string" ? data.channel : null,
    status: Number.isInteger(data.status) ? data.status : null,
    reason: typeof data.reason === "string" ? data.reason : "",
    error: typeof data.error === "string" ? data.error : "",
  };
}

// One key per socket URL, without the query (tokens, channel); null for a URL that does not parse.
function storageKey(url) {
  try {
    const parsed = new URL(url, globalThis.location?.href);
    return `${STORAGE_PREFIX}${parsed.origin}${parsed.pathname}`;
  } catch (_error) {
    return null;
  }
}

// sessionStorage when it works: reading the property throws where storage is disabled, and a
// write throws in some private modes.
function openStorage() {
  try {
    const storage = globalThis.sessionStorage;
    if (!storage) return null;
    const probe = `${STORAGE_PREFIX}probe`;
    storage.setItem(probe, "1");
    storage.removeItem(probe);
    return storage;
  } catch (_error) {
    return null;
  }
}
