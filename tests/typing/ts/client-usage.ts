// A TypeScript project's use of the browser client, as its own code would write it.
//
// `make lint` runs `tsc --noEmit -p .` (tsconfig.json): every line here must type-check against
// websocket-client.d.ts, and every `@ts-expect-error` line must fail to (a declaration that
// grew too loose fails the check). Never run; add to it when the client's API grows.

import {
  type ChannelCloseDetail,
  type ChannelErrorDetail,
  ChannelSubscription,
  csrfTokenFromCookie,
  DEFAULTS,
  type ErrorDetail,
  FRAME_BYTES,
  type GapDetail,
  type Member,
  type MessageDroppedDetail,
  type MessageErrorEvent,
  PART_CHUNK_BYTES,
  type PresenceEvent,
  type ServerMessage,
  STORED_STREAMS_MAX,
  utf8Length,
  WebSocketClient,
  type WhisperEvent,
} from "../../../django_aws_api_gateway_websockets/static/django_aws_api_gateway_websockets/websocket-client.js";

interface ChatMessage extends ServerMessage {
  type: "chat";
  user: string;
  text: string;
  room: string;
}

const ws = WebSocketClient.fromElement("ws-config", { heartbeatMs: DEFAULTS.heartbeatMs * 2 });
const direct = new WebSocketClient({
  url: "wss://ws.example.com/",
  tokenUrl: "/api/ws-token/",
  channel: "room-1",
  csrfToken: csrfTokenFromCookie(),
  refusalUrl: null,
  heartbeat: { handler: "ping" },
  persistSeq: false,
});

// The client's own events carry a typed detail.
ws.addEventListener("open", (event) => console.log(event.detail.channel.toUpperCase()));
ws.addEventListener("close", (event) => console.log(event.detail.code + 1, event.detail.reason));
ws.addEventListener("reconnecting", (event) => console.log(event.detail.delay, event.detail.attempt));
ws.addEventListener("unauthorized", (event) => console.log(event.detail.status, event.detail.reason));
ws.addEventListener("dropped", (event) => console.log(event.detail.frame.length));
ws.addEventListener("gap", (event) => {
  const gap: GapDetail = event.detail;
  console.log(gap.stream, gap.after, gap.seq, gap.firstKept ?? "unknown", gap.reason);
});
ws.addEventListener("resumed", (event) => {
  for (const [stream, seq] of Object.entries(event.detail)) console.log(stream, seq.toFixed());
});
// Large messages (docs/large-messages.md): a message in parts dropped whole, a refused send.
ws.addEventListener("messagedropped", (event) => {
  const dropped: MessageDroppedDetail = event.detail;
  if (dropped.reason === "timeout") console.log(dropped.id ?? "unreadable", dropped.received, dropped.parts, dropped.bytes);
});
ws.addEventListener("message_error", (event) => {
  const refusal: MessageErrorEvent = event.detail;
  console.log(refusal.p, refusal.status.toFixed(), refusal.error, refusal.message);
});
const big = "x".repeat(2 * 1024 * 1024);
if (utf8Length(big) > FRAME_BYTES) console.log(Math.ceil(utf8Length(big) / PART_CHUNK_BYTES), "parts");
try {
  ws.send(big);
} catch (error) {
  if (error instanceof RangeError) console.log("over maxMessageBytes", DEFAULTS.maxMessageBytes, DEFAULTS.partTimeoutMs);
}
new WebSocketClient({ url: "ws://127.0.0.1:8000/", maxMessageBytes: 4 * 1024 * 1024, partTimeoutMs: 60_000 });
new WebSocketClient({ url: "ws://127.0.0.1:8000/", partsPerSecond: 100, partsBurst: DEFAULTS.partsBurst * 2 });
// @ts-expect-error: a dropped message's reason is one of five
ws.addEventListener("messagedropped", (event) => event.detail.reason === "lost");

ws.addEventListener("error", (event) => {
  const detail: ErrorDetail = event.detail;
  if (detail.kind === "refused" && detail.final) console.log(detail.status, detail.reason, detail.refusals);
  else if (detail.kind === "handshake") console.log(detail.code, detail.failures);
  else if (detail.kind === "token") console.log(detail.error.message);
});
ws.addEventListener("message", (event) => {
  // Anything JSON, or the raw text: narrowed before use.
  const data = event.detail;
  if (typeof data === "object" && data !== null && "type" in data) console.log(data.type);
});

// Server messages by their "type": ServerMessage by default, or the shape the project names.
ws.addEventListener("notification", (event) => console.log(event.detail.type, event.detail["text"]));
ws.addEventListener<ChatMessage>("chat", (event) => console.log(`${event.detail.user}: ${event.detail.text}`));
const onChat = (event: CustomEvent<ChatMessage>) => console.log(event.detail.room);
ws.addEventListener<ChatMessage>("chat", onChat);
ws.removeEventListener<ChatMessage>("chat", onChat);
ws.addEventListener("open", { handleEvent: (event) => console.log(event.detail.channel) }, { once: true });

// Methods and state.
const started: WebSocketClient = ws.connect();
const queued: boolean = started.send({ handler: "send_chat", text: "hi" }) && ws.send("raw text");
ws.switchChannel("room-2");
const last: number | null = ws.lastSeq("room-2") ?? ws.lastSeq("@user");
const state: [boolean, string, number, number] = [ws.isOpen, ws.channel, ws.queue.length, STORED_STREAMS_MAX];
console.log(queued, last, state, ws.socket?.readyState, ws.options.backoffCapMs);
direct.close();

// Mistakes the declarations catch.
// @ts-expect-error: a client needs its url
new WebSocketClient({ channel: "room-1" });
// @ts-expect-error: an option of the wrong type
new WebSocketClient({ url: "wss://ws.example.com/", queueLimit: "100" });
// @ts-expect-error: no such option
new WebSocketClient({ url: "wss://ws.example.com/", chanel: "room-1" });
// @ts-expect-error: the open event has no "reason"
ws.addEventListener("open", (event) => console.log(event.detail.reason));
// @ts-expect-error: send takes an object or a string
ws.send(42);
// @ts-expect-error: switchChannel takes the channel's name
ws.switchChannel();

// --- Channels: one socket, many subscriptions (docs/channels.md) ---------------------------

interface DocumentEdit extends ServerMessage {
  type: "edit";
  revision: number;
}

const room = ws.subscribe("room-42", {
  onSubscribed(detail, members) {
    console.log(detail.channel, detail.seq ?? 0, members.length, this.state);
  },
  onMessage(message, members) {
    console.log(message.type, message.stream, message.seq, members.map((member) => member.id));
  },
  onPresence(event: PresenceEvent, members: Member[]) {
    if (event.event === "join" && event.user) console.log(`${event.user.username} joined`, event.user_count);
    console.log(members.map((member) => member["avatar"]));
  },
  onWhisper(event: WhisperEvent) {
    if (event.event === "typing" && event.user) console.log(`${event.user.username} is typing`, event.data);
  },
  onError(detail: ChannelErrorDetail) {
    if (detail.kind === "subscribe" && detail.reason === "not_allowed") console.log(detail.status, detail.error);
  },
  onClose(detail: ChannelCloseDetail) {
    if (detail.reason === "revoked") console.log(detail.channel, detail.message);
  },
});
const document_ = ws.subscribe<DocumentEdit>("doc-7", { onMessage: (edit) => console.log(edit.revision + 1) });
const notifications = ws.subscribe("notifications", { presence: true });
const whispered: boolean = room.whisper("typing", { typing: true }) || room.whisper("stopped");
const roomState: "subscribing" | "subscribed" | "closed" = room.state;
const members: Member[] = notifications.members;
console.log(whispered, roomState, members, room.lastSeq, room.channel, room.closed, document_.client === ws);
room.refreshMembers();
room.unsubscribe();
document_.unsubscribe();

// @ts-expect-error: the channel's name is a string
ws.subscribe(42);
// @ts-expect-error: no such handler
ws.subscribe("room-1", { onMesage: () => undefined });
// @ts-expect-error: a whisper names its event
room.whisper();
// @ts-expect-error: a subscription's members are read, not set
room.members = [];
// @ts-expect-error: subscriptions come from subscribe()
new ChannelSubscription();
