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
  // refusalUrl: where to ask why a handshake failed; undefined: `<tokenUrl>refusal/`; null: never ask
};

const HANDSHAKE_FAILED =
  "The WebSocket handshake failed: refused by the server, or the gateway is unreachable (a browser is not told which).";

// Events the client itself emits; a message whose "type" is one of these is only a "message" event.
const LIFECYCLE = new Set([
  "open", "close", "message", "error", "unauthorized", "reconnecting", "dropped", "refused", "gap", "replay", "resume_gap",
  "resumed",
]);
const USER_STREAM = "@user"; // the wire name of the user's direct-message stream
const STORAGE_PREFIX = "django_aws_api_gateway_websockets:seq:";
export const STORED_STREAMS_MAX = 50; // streams remembered per socket URL (the least recent dropped)

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
  // the queue is full and the oldest queued message had to be dropped.
  send(message) {
    const frame = typeof message === "string" ? message : JSON.stringify(message);
    if (this.isOpen) {
      this.socket.send(frame);
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
    while (this.queue.length && this.isOpen) socket.send(this.queue.shift());
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

  _onMessage(event) {
    let data = event.data;
    try {
      data = JSON.parse(event.data);
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
    } else {
      this._deliver(data);
    }
  }

  _deliver(data) {
    this._emit("message", data);
    if (data && typeof data.type === "string" && !LIFECYCLE.has(data.type)) this._emit(data.type, data);
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

  // Ask for what was missed on the current channel and the user stream (or some of them: a
  // stream name or a list); for a stream not seen yet, "after": null asks where it stands.
  _sendResume(socket, only) {
    if (!this.options.resume || !socket || socket.readyState !== WebSocket.OPEN) return;
    const wanted = (stream) => !only || only === stream || (Array.isArray(only) && only.includes(stream));
    const message = { handler: "resume" };
    const channel = this.streams.get(this.channel);
    if (this.channel && wanted(this.channel)) {
      message.channel = this.channel;
      message.after = channel ? channel.last : null;
    }
    const user = this.streams.get(USER_STREAM);
    if (wanted(USER_STREAM)) message.user_after = user ? user.last : null;
    socket.send(JSON.stringify(message));
  }

  // The server replays one page per resume; "more" names the streams it has not finished.
  // Ask again from what was delivered (not from the server's cursor: a page lost in flight is
  // then asked for again). A request left unanswered is repeated, a few times.
  _continueResume(more) {
    clearTimeout(this.timers.resume);
    this.timers.resume = null;
    const streams = more && typeof more === "object" ? Object.keys(more) : [];
    const pending = streams.filter((s) => (s === this.channel && this.channel) || s === USER_STREAM);
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
    this.timers = {};
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
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
