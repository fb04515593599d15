// TypeScript declarations for websocket-client.js (the browser client, docs/browser-client.md).
// The module itself is plain JavaScript with no build step; these declarations ship next to it
// so that a TypeScript project (or an editor) type-checks its use:
//
//   import { WebSocketClient } from "./websocket-client.js";   // resolves to this file
//
// Checked by `make lint` (tsc --noEmit, tsconfig.json) against tests/typing/ts/.

/** A JSON object the server sent: `type` names the event it is dispatched as. */
export interface ServerMessage {
  type?: string;
  /** The stream a sequenced message belongs to (a channel, or "@user"). */
  stream?: string;
  /** Its number on that stream (history.md). */
  seq?: number;
  [key: string]: unknown;
}

/** Options of the constructor and of `fromElement`'s overrides (DEFAULTS has the defaults). */
export interface WebSocketClientOptions {
  /** The WebSocket URL (wss://… or the local gateway's ws://…). */
  url: string;
  /** Where a single-use token is POSTed for before every (re)connect; "" connects without one. */
  tokenUrl?: string;
  /** The channel joined on connect (the connect query's `channel`). */
  channel?: string;
  /** The CSRF token sent with the token and refusal requests; default: the `csrftoken` cookie. */
  csrfToken?: string;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Frames kept while not connected; the oldest is dropped (a `dropped` event) beyond it. */
  queueLimit?: number;
  heartbeatMs?: number;
  maxLifetimeMs?: number;
  /** The frame sent every heartbeatMs (JSON). */
  heartbeat?: Record<string, unknown>;
  /** Refusals of the same kind in a row that stop the client (429 never does). */
  maxRefusals?: number;
  /** Where to ask why a handshake failed; undefined: `<tokenUrl>refusal/`; null: never ask. */
  refusalUrl?: string | null;
  /** Ask the server for missed sequenced messages after each reconnect. */
  resume?: boolean;
  gapWaitMs?: number;
  resumeRetryMs?: number;
  /** Keep the last number per stream in sessionStorage, so a reload resumes from it. */
  persistSeq?: boolean;
  /** Identifies the user (e.g. their id): the user stream's number is kept across reloads too. */
  userKey?: string;
  /** A subscribe or unsubscribe left unanswered this long is sent again (5 times at most). */
  channelRetryMs?: number;
  /** The largest message send() takes, in UTF-8 bytes (the server's WEBSOCKETS["max_message_bytes"],
   * default 1 MB); the largest message in parts accepted from the server. */
  maxMessageBytes?: number;
  /** A message in parts not complete this long after its first part is dropped (messagedropped). */
  partTimeoutMs?: number;
  /** Parts leave at most this fast once partsBurst left at once (the server's message rate limit
   * counts every part); 0: back to back. */
  partsPerSecond?: number;
  partsBurst?: number;
}

export declare const DEFAULTS: Readonly<Required<Omit<WebSocketClientOptions, "url" | "tokenUrl" | "csrfToken" | "refusalUrl">>>;

/** Streams remembered per socket URL in sessionStorage (the least recently updated dropped). */
export declare const STORED_STREAMS_MAX: number;

/** The largest client frame API Gateway takes (32,768 bytes); a larger message is sent as parts. */
export declare const FRAME_BYTES: number;

/** The UTF-8 bytes of text in each part the client sends (32,000). */
export declare const PART_CHUNK_BYTES: number;

/** The UTF-8 length of a string (what the socket sends), without encoding it. */
export declare function utf8Length(text: string): number;

/** The value of a cookie (default `csrftoken`), "" when there is none. */
export declare function csrfTokenFromCookie(name?: string): string;

export interface OpenDetail {
  channel: string;
}

export interface CloseDetail {
  code: number;
  reason: string;
}

export interface ReconnectingDetail {
  delay: number;
  attempt: number;
}

export interface UnauthorizedDetail {
  status: number;
  reason: string;
}

export interface RefusalDetail {
  kind: "refused";
  status: number;
  reason: string;
  code?: string;
  /** Refusals of this kind in a row. */
  refusals: number;
}

/** The `error` event: the token request, a failed handshake, a refusal, or an open socket's error. */
export type ErrorDetail =
  | { kind: "token"; status: number | null; reason: string; error: Error }
  | { kind: "handshake"; status: null; reason: string; code: number; failures: number }
  | (RefusalDetail & { final: boolean })
  | { kind: "socket"; status: null; reason: string }
  /** The rules took away the connect channel of a socket that held no other: the client stops. */
  | { kind: "revoked"; status: 403; reason: string; channel: string; final: true };

export interface DroppedDetail {
  /** The JSON text of the frame that left the full queue. */
  frame: string;
}

export interface GapDetail {
  stream: string;
  /** The last number delivered before the gap. */
  after: number;
  /** Delivery continues after this number. */
  seq: number;
  firstKept: number | null;
  /** "expired": no longer kept; "too_large": that one message could not be replayed. */
  reason: string;
}

/** A message of the server's in parts that was dropped whole (docs/large-messages.md). */
export interface MessageDroppedDetail {
  /** The message id (the parts' `p`); null when a part's header could not be read. */
  id: string | null;
  /** timeout: not complete within partTimeoutMs; aborted: the server gave up on it; closed: the
   * socket closed midway (a resume replays sequenced messages whole); bad_part: parts that
   * contradict each other or a malformed header; too_large: over maxMessageBytes. */
  reason: "timeout" | "aborted" | "closed" | "bad_part" | "too_large";
  /** Parts held when it was dropped. */
  received: number;
  /** Its part count and size in UTF-8 bytes, as the parts said (null when unreadable). */
  parts: number | null;
  bytes: number | null;
}

/** The server refused a message the client sent in parts; nothing ran for it. Emitted as the
 * `message_error` event (its `type`). */
export interface MessageErrorEvent {
  type: "message_error";
  /** The id of the message in parts. */
  p: string;
  status: number;
  /** bad_part, too_large, too_many_pending, expired. */
  error: string;
  message: string;
}

/** The events the client emits itself, with their `detail`. */
export interface WebSocketClientEventMap {
  open: CustomEvent<OpenDetail>;
  close: CustomEvent<CloseDetail>;
  reconnecting: CustomEvent<ReconnectingDetail>;
  unauthorized: CustomEvent<UnauthorizedDetail>;
  error: CustomEvent<ErrorDetail>;
  refused: CustomEvent<RefusalDetail>;
  dropped: CustomEvent<DroppedDetail>;
  /** Every frame received: parsed JSON, or the raw string when it is not JSON. */
  message: CustomEvent<unknown>;
  gap: CustomEvent<GapDetail>;
  /** Where each stream stands after a resume: {stream: seq}. */
  resumed: CustomEvent<Record<string, number>>;
  /** A message in parts dropped whole: never delivered in part. */
  messagedropped: CustomEvent<MessageDroppedDetail>;
  /** The server refused a message sent in parts. */
  message_error: CustomEvent<MessageErrorEvent>;
}

type Listener<E> = ((event: E) => void) | { handleEvent(event: E): void };

// --- channels (subscribe) ----------------------------------------------------------------

/** A channel member, from the server's presence hook: `id` and `username` by default, plus
 * whatever the project's `presence_info(user)` adds. */
export interface Member {
  id: number | string;
  username?: string;
  [key: string]: unknown;
}

/** A presence frame of one channel (join, leave, sync, or a page of the member list). */
export interface PresenceEvent {
  type: "presence";
  event: "join" | "leave" | "sync" | "members";
  channel: string;
  /** join/leave: who (null: an anonymous connection). */
  user?: Member | null;
  /** members: one page of the list. */
  users?: Member[];
  next?: number | string | null;
  user_count: number;
  anonymous: number;
  connections: number;
}

/** A client event another subscriber sent (never stored, never replayed). */
export interface WhisperEvent<D = unknown> {
  type: "whisper";
  channel: string;
  event: string;
  data: D;
  /** The sender's member info; null when anonymous. */
  user: Member | null;
}

export interface SubscribedDetail {
  channel: string;
  /** The last number delivered on the channel (where it stood when subscribed). */
  seq: number | null;
}

export interface ChannelErrorDetail {
  /** What was refused. */
  kind: "subscribe" | "whisper" | "unsubscribe";
  channel: string | null;
  status: number | null;
  /** invalid_channel, invalid_after, not_allowed, too_many, invalid_event, not_subscribed, too_large, no_answer… */
  reason: string;
  error: string;
  /** The whisper's event name (kind "whisper"). */
  event?: string | null;
}

export interface ChannelCloseDetail {
  channel: string;
  /** refused: the subscribe was refused; revoked: the channel rules took it away;
   * channel_changed: switchChannel() left every channel for another. */
  reason: "refused" | "revoked" | "channel_changed";
  status?: number | null;
  /** revoked: the server's reason. */
  message?: string;
}

/** Called for one subscription (`this` is the subscription); each also gets the members. */
export interface ChannelHandlers<M extends object = ServerMessage> {
  /** The server holds the channel (again: after every reconnect). */
  onSubscribed?(this: ChannelSubscription<M>, detail: SubscribedDetail, members: Member[]): void;
  /** A sequenced message on the channel (its `stream`), in order, once, replays included. */
  onMessage?(this: ChannelSubscription<M>, message: M, members: Member[]): void;
  /** A presence frame; `members` is the list kept up to date. Asks the server for the list. */
  onPresence?(this: ChannelSubscription<M>, event: PresenceEvent, members: Member[]): void;
  onWhisper?(this: ChannelSubscription<M>, event: WhisperEvent, members: Member[]): void;
  onError?(this: ChannelSubscription<M>, detail: ChannelErrorDetail, members: Member[]): void;
  /** The subscription ended without unsubscribe(). */
  onClose?(this: ChannelSubscription<M>, detail: ChannelCloseDetail, members: Member[]): void;
  /** Keep the member list without an onPresence handler. */
  presence?: boolean;
}

/** What `subscribe()` returns: this page's hold on one channel. */
export declare class ChannelSubscription<M extends object = ServerMessage> {
  private constructor();
  readonly client: WebSocketClient;
  readonly channel: string;
  readonly handlers: ChannelHandlers<M>;
  /** True after unsubscribe(), or once the subscription ended (onClose). */
  readonly closed: boolean;
  readonly state: "subscribing" | "subscribed" | "closed";
  /** The channel's members (when presence was asked for); [] before the list arrives. */
  readonly members: Member[];
  /** The number of the last message delivered on the channel, null before any. */
  readonly lastSeq: number | null;
  /** Send a client event to the channel's other subscribers; false (not queued) when not open or not subscribed. */
  whisper(event: string, data?: unknown): boolean;
  /** Ask for the member list again. */
  refreshMembers(): void;
  /** Let go of the channel (the server subscription ends with the last handle). */
  unsubscribe(): void;
}

export declare class WebSocketClient extends EventTarget {
  constructor(options: WebSocketClientOptions);

  /** A client from the JSON that `{% websocket_config %}` renders into element `id`. */
  static fromElement(id: string, overrides?: Partial<WebSocketClientOptions>): WebSocketClient;

  readonly options: Readonly<WebSocketClientOptions & typeof DEFAULTS>;
  /** The channel joined on (re)connect (switchChannel changes it). */
  channel: string;
  /** Frames (JSON text) waiting for the socket to open. */
  readonly queue: string[];
  readonly socket: WebSocket | null;
  readonly isOpen: boolean;

  /** Start connecting; a no-op while running. */
  connect(): this;
  /** Send an object (as JSON) or a string; queued while not connected; false when the queue overflowed.
   * Over one 32 KB frame it goes as parts (paced: partsPerSecond, partsBurst); over maxMessageBytes
   * (UTF-8) it throws a RangeError. */
  send(message: object | string): boolean;
  /** Leave every channel for `name` (the built-in change_channel), now and on every reconnect;
   * the other subscriptions end (onClose, reason "channel_changed"). */
  switchChannel(name: string): void;
  /** Hold `channel` too, across reconnects, until unsubscribe(). Throws a TypeError for an invalid name. */
  subscribe<M extends object = ServerMessage>(channel: string, handlers?: ChannelHandlers<M>): ChannelSubscription<M>;
  /** Stop for good: no reconnect, no heartbeat, the queue discarded. */
  close(): void;
  /** The number of the last message delivered on a stream (a channel, or "@user"), null before any. */
  lastSeq(stream: string): number | null;

  addEventListener<K extends keyof WebSocketClientEventMap>(
    type: K,
    listener: Listener<WebSocketClientEventMap[K]>,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** A server message by its `type` (e.g. "chat"); name the message's shape with `T`. */
  addEventListener<T extends object = ServerMessage>(
    type: string,
    listener: Listener<CustomEvent<T>>,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof WebSocketClientEventMap>(
    type: K,
    listener: Listener<WebSocketClientEventMap[K]>,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener<T extends object = ServerMessage>(
    type: string,
    listener: Listener<CustomEvent<T>>,
    options?: boolean | EventListenerOptions,
  ): void;
}
