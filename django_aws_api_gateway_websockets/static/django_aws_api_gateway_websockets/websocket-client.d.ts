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
}

export declare const DEFAULTS: Readonly<Required<Omit<WebSocketClientOptions, "url" | "tokenUrl" | "csrfToken" | "refusalUrl">>>;

/** Streams remembered per socket URL in sessionStorage (the least recently updated dropped). */
export declare const STORED_STREAMS_MAX: number;

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
  | { kind: "socket"; status: null; reason: string };

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
}

type Listener<E> = ((event: E) => void) | { handleEvent(event: E): void };

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
  /** Send an object (as JSON) or a string; queued while not connected; false when the queue overflowed. */
  send(message: object | string): boolean;
  /** Leave the current channel for `name` (the built-in change_channel), now and on every reconnect. */
  switchChannel(name: string): void;
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
