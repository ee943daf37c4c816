// The package against the reference server, in Node (run with --experimental-websocket on
// Node 20, which gives it the platform WebSocket that Node 22 has built in).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  ApiError,
  type Closed,
  type Disconnected,
  LiveError,
  type Message,
  Realtime,
  RealtimeClient,
  type RequestBody,
  type SubscribedEvent,
  type Subscription,
  type UserMessage,
} from "../../src/index.js";
import { WebSocket as WsWebSocket } from "ws";

import { Server } from "./server.js";

let server: Server;
let rest: RealtimeClient;
const opened: Realtime[] = [];

before(async () => {
  // Short heartbeats: a client that sent nothing would be cut within 2 s.
  server = await Server.start({ GATEWAY__HEARTBEAT_INTERVAL_SECONDS: "1", GATEWAY__HEARTBEAT_TIMEOUT_SECONDS: "2" });
  rest = new RealtimeClient({ baseUrl: server.url, apiKey: server.apiKey });
  for (const [name, type] of [["orders", "private"], ["lobby", "presence"], ["news", "public"]] as const) {
    await rest.channelCreate({ name, type });
  }
});

after(async () => {
  for (const realtime of opened) realtime.close();
  await server.dispose();
});

/** A live connection whose tokens the "backend" (this test, holding the key) issues. */
function connect(request: RequestBody<"realtime.token.issue">) {
  const events = { disconnected: [] as Disconnected[], closed: [] as Closed[] };
  const realtime = new Realtime({ token: () => rest.tokenIssue(request), reconnect: { initialDelayMs: 100, maxDelayMs: 500 } });
  realtime.on("disconnected", (event) => events.disconnected.push(event));
  realtime.on("closed", (event) => events.closed.push(event));
  opened.push(realtime);
  return { realtime, events };
}

/** The messages a subscription receives, once it has been confirmed. */
async function listen(subscription: Subscription): Promise<Message[]> {
  const messages: Message[] = [];
  subscription.on("message", (message) => messages.push(message));
  await new Promise<void>((resolve, reject) => {
    subscription.on("subscribed", () => resolve());
    subscription.on("error", reject);
  });
  return messages;
}

async function until(check: () => boolean, what: string, withinMs = 10_000) {
  const deadline = Date.now() + withinMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test("every operation answers what its generated type says", async () => {
  const token = await rest.tokenIssue({ client_id: "ops", channels: ["orders"], capabilities: ["subscribe"], ttl_seconds: 60 });
  assert.equal(token.client_id, "ops");
  assert.match(token.endpoint, /^ws:\/\//);
  assert.equal((await rest.tokenRevoke({ token_or_jti: token.jti })).revoked, true);
  assert.equal((await rest.channelGet("orders")).type, "private");
  assert.ok((await rest.channelList({ limit: 10 })).channels.some((channel) => channel.name === "news"));
  const published = await rest.publish({ channel: "news", event: "headline", data: { n: 1 } });
  assert.equal(published.channel, "news");
  const batch = await rest.publishBatch({ messages: [{ channel: "news", event: "headline", data: { n: 2 } }] });
  assert.equal(batch.messages.length, 1);
  const history = await rest.channelHistory("news", { limit: 10 });
  assert.deepEqual(history.messages.map((message) => message.data), [{ n: 1 }, { n: 2 }]);
  assert.deepEqual((await rest.presenceGet("lobby")).members, []);
  assert.ok((await rest.eventTypes()).types.includes("message"));
  assert.ok((await rest.accountGet()).balance > 0);
  assert.ok((await rest.accountTopup({ amount: 1_000_000 })).checkout_url.startsWith("http"));
  assert.equal(typeof (await rest.userDisconnect({ client_id: "nobody" })).disconnected, "number");
  const told = await rest.userMessageSend({ target_user_id: "nobody-home", payload: { text: "hi" } });
  assert.deepEqual([told.delivery, told.delivered, told.sequence], ["realtime", 0, undefined]);
  const signed = await rest.authSign({ client_id: "ops", socket_id: "1.2", channels: ["orders"], vendor: "pusher" });
  assert.ok(signed);
  await rest.channelCreate({ name: "scratch", type: "public" });
  assert.equal((await rest.channelDelete("scratch")).deleted, true);
});

test("problems are thrown as ApiErrors with the contract's code", async () => {
  await assert.rejects(rest.channelGet("never-created"), (error: unknown) => error instanceof ApiError && error.code === "NOT_FOUND" && error.status === 404);
  await assert.rejects(rest.userCommandGet("cmd_never_sent"), (error: unknown) => error instanceof ApiError && error.code === "NOT_FOUND");
  await assert.rejects(
    rest.userCommandSend({ target_user_id: "nobody-home", type: "PING", data: null }),
    (error: unknown) => error instanceof ApiError && error.code === "USER_OFFLINE" && error.status === 409,
  );
  const stranger = new RealtimeClient({ baseUrl: server.url, apiKey: "ifr_pk_proj_unknown" });
  await assert.rejects(stranger.accountGet(), (error: unknown) => error instanceof ApiError && error.code === "UNAUTHENTICATED");
});

test("a call repeated with its idempotency key is replayed, not repeated, and charged once", async () => {
  const before = (await rest.accountGet()).balance;
  const body = { channel: "news", event: "once", data: null };
  const first = await rest.call("realtime.publish", { body }, { idempotencyKey: "e2e-once" });
  const again = await rest.call("realtime.publish", { body }, { idempotencyKey: "e2e-once" });
  assert.equal(first.replayed, false);
  assert.equal(again.replayed, true);
  assert.equal(again.body.message_id, first.body.message_id);
  assert.equal((await rest.accountGet()).balance, before - 10);
});

test("a subscriber receives publishes in order, and a quiet connection outlives the heartbeat timeout", async () => {
  const { realtime, events } = connect({ client_id: "reader", channels: ["orders"], ttl_seconds: 600 });
  const subscription = realtime.subscribe("orders");
  const connected = await realtime.connect();
  const messages = await listen(subscription);
  for (let n = 0; n < 30; n++) await rest.publish({ channel: "orders", event: "order", data: n });
  await until(() => messages.length === 30, "30 messages");
  assert.deepEqual(messages.map((message) => message.data), [...Array(30).keys()]);
  // The server's timeout is 2 s: only the client's pings keep this socket open.
  await new Promise((resolve) => setTimeout(resolve, 3_500));
  assert.deepEqual(events.disconnected, []);
  assert.equal(realtime.connection?.connection_id, connected.connection_id);
  realtime.close();
});

test("the WebSocket of the `ws` package works too, for Node 20 without --experimental-websocket", async () => {
  const realtime = new Realtime({
    token: () => rest.tokenIssue({ client_id: "ws-user", channels: ["news"] }),
    WebSocket: WsWebSocket,
  });
  opened.push(realtime);
  const subscription = realtime.subscribe("news");
  await realtime.connect();
  const messages = await listen(subscription);
  await rest.publish({ channel: "news", event: "headline", data: "over ws" });
  await until(() => messages.length === 1, "a message");
  assert.equal(messages[0]?.data, "over ws");
  realtime.close();
});

test("presence members are kept current as others join and leave", async () => {
  const { realtime } = connect({ client_id: "host", channels: ["lobby"], capabilities: ["subscribe", "presence"], ttl_seconds: 600 });
  const lobby = realtime.subscribe("lobby");
  await realtime.connect();
  await listen(lobby);
  assert.deepEqual(lobby.members.map((member) => member.client_id), ["host"]);
  const guest = connect({ client_id: "guest", user_id: "u-guest", channels: ["lobby"], capabilities: ["subscribe", "presence"] });
  guest.realtime.subscribe("lobby");
  await guest.realtime.connect();
  await until(() => lobby.members.length === 2, "the guest's join");
  assert.deepEqual(lobby.members[1], { client_id: "guest", user_id: "u-guest" });
  guest.realtime.close();
  await until(() => lobby.members.length === 1, "the guest's leave");
  realtime.close();
});

test("an expiring token is replaced on 4002 without losing the subscription", async () => {
  const { realtime, events } = connect({ client_id: "short-lived", channels: ["orders"], ttl_seconds: 2 });
  const subscription = realtime.subscribe("orders");
  await realtime.connect();
  const messages = await listen(subscription);
  await until(() => events.disconnected.some((event) => event.code === 4002), "the server's 4002", 5_000);
  await until(() => realtime.state === "connected" && subscription.state === "subscribed", "back with a fresh token");
  await rest.publish({ channel: "orders", event: "order", data: "after-refresh" });
  await until(() => messages.some((message) => message.data === "after-refresh"), "a message after the refresh");
  assert.deepEqual(events.closed, []);
  realtime.close();
});

test("a revoked token stops the connection with 4003, and it does not retry", async () => {
  // A provider that always hands out the same token, so only the close code decides.
  const token = await rest.tokenIssue({ client_id: "revokee", channels: ["orders"], ttl_seconds: 600 });
  const realtime = new Realtime({ token: async () => token });
  opened.push(realtime);
  const closed: Closed[] = [];
  realtime.on("closed", (event) => closed.push(event));
  await realtime.connect();
  await rest.tokenRevoke({ token_or_jti: token.jti });
  await until(() => closed.length > 0, "closed");
  assert.equal(closed[0]?.code, 4003);
  assert.equal(realtime.state, "closed");
});

test("the connection survives a server restart and subscribes again", async () => {
  const { realtime, events } = connect({ client_id: "survivor", channels: ["orders"], ttl_seconds: 600 });
  const subscription = realtime.subscribe("orders");
  await realtime.connect();
  const messages = await listen(subscription);
  const resubscribed = new Promise<boolean>((resolve) => subscription.on("subscribed", (event) => resolve(event.resubscribed)));
  await server.restart();
  assert.equal(await resubscribed, true);
  assert.equal(events.disconnected[0]?.code, 4200);
  await rest.publish({ channel: "orders", event: "order", data: "after-restart" });
  await until(() => messages.some((message) => message.data === "after-restart"), "a message after the restart");
  realtime.close();
});

test("a reliable message sent while the user is offline arrives on connect; acknowledged, it is not delivered again", async () => {
  const away = await rest.userMessageSend({ target_user_id: "inbox", delivery: "reliable", payload: { text: "while you were away" } });
  assert.equal(away.delivered, 0);
  assert.equal(typeof away.sequence, "number");
  const phone = connect({ client_id: "inbox-phone", user_id: "inbox", channels: ["news"], ttl_seconds: 600 });
  const onPhone: UserMessage[] = [];
  phone.realtime.on("userMessage", (message) => {
    onPhone.push(message);
    // Only the first is handled (and acknowledged) on this device.
    if (message.delivery === "reliable" && message.message_id === away.message_id) message.ack();
  });
  await phone.realtime.connect();
  await until(() => onPhone.length === 1, "the message sent while offline");
  const [first] = onPhone;
  assert.equal(first?.message_id, away.message_id);
  assert.equal(first?.delivery, "reliable");
  assert.deepEqual(first?.payload, { text: "while you were away" });
  assert.equal(first?.sender_type, "server");
  const live = await rest.userMessageSend({ target_user_id: "inbox", delivery: "reliable", payload: "live" });
  assert.equal(live.delivered, 1);
  await until(() => onPhone.length === 2, "the message sent while connected");
  phone.realtime.close();

  // Another device of the user gets what is not acknowledged yet, and only that.
  const laptop = connect({ client_id: "inbox-laptop", user_id: "inbox", channels: ["news"], ttl_seconds: 600 });
  const onLaptop: UserMessage[] = [];
  laptop.realtime.on("userMessage", (message) => onLaptop.push(message));
  await laptop.realtime.connect();
  await until(() => onLaptop.length >= 1, "the unacknowledged message");
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(onLaptop.map((message) => message.message_id), [live.message_id]);
  const again = onLaptop[0];
  assert.ok(again?.delivery === "reliable" && again.delivery_count > 1, "a redelivery says so");
  laptop.realtime.close();
});

test("a command is answered by the user's handler, and the REST call gets its response", async () => {
  const { realtime } = connect({ client_id: "canvas-app", user_id: "artist", channels: ["news"], ttl_seconds: 600 });
  realtime.onCommand(async ({ command, data, sender_id }) => ({ done: command, name: (data as { name: string }).name, for: sender_id }));
  await realtime.connect();
  const request = { target_user_id: "artist", type: "CREATE_CANVAS", data: { name: "sketch" }, sender_id: "backend", timeout: 10 };
  const answered = await rest.userCommandSend(request);
  assert.equal(answered.status, "answered");
  assert.deepEqual(answered.response, { done: "CREATE_CANVAS", name: "sketch", for: "backend" });
  const stored = await rest.userCommandGet(answered.command_id);
  // The store keeps microseconds.
  assert.deepEqual({ ...stored, expires_at: undefined }, { ...answered, expires_at: undefined });
  assert.equal(Date.parse(stored.expires_at), Date.parse(answered.expires_at));

  // Not waiting: the command is read later, once answered.
  const pending = await rest.userCommandSend({ ...request, data: { name: "later" }, wait_for_response: false });
  assert.equal(pending.status, "pending");
  let read = await rest.userCommandGet(pending.command_id);
  for (let polls = 0; read.status === "pending" && polls < 100; polls++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    read = await rest.userCommandGet(pending.command_id);
  }
  assert.deepEqual([read.status, read.response], ["answered", { done: "CREATE_CANVAS", name: "later", for: "backend" }]);
  realtime.close();
});

test("a command that no handler answers fails with COMMAND_TIMEOUT once its wait is over", async () => {
  const { realtime } = connect({ client_id: "silent-app", user_id: "silent", channels: ["news"], ttl_seconds: 600 });
  await realtime.connect();
  await assert.rejects(
    rest.userCommandSend({ target_user_id: "silent", type: "PING", data: null, timeout: 1 }),
    (error: unknown) => error instanceof ApiError && error.code === "COMMAND_TIMEOUT" && error.status === 504,
  );
  realtime.close();
});

test("a client with the `message` capability sends to a user over its socket, and that user's handler answers its command", async () => {
  const receiver = connect({ client_id: "receiver-app", user_id: "receiver", channels: ["news"], capabilities: ["subscribe"], ttl_seconds: 600 });
  const got: UserMessage[] = [];
  receiver.realtime.on("userMessage", (message) => got.push(message));
  receiver.realtime.onCommand(({ command, sender_type, sender_id }) => ({ command, from: `${sender_type}:${sender_id}` }));
  await receiver.realtime.connect();
  const sender = connect({ client_id: "sender-app", channels: ["news"], capabilities: ["subscribe", "message"], ttl_seconds: 600 });
  await sender.realtime.connect();

  const sent = await sender.realtime.sendUserMessage("receiver", { text: "from a client" });
  assert.deepEqual([sent.delivered, sent.sequence], [1, undefined]);
  await until(() => got.length === 1, "the user message");
  assert.deepEqual([got[0]?.sender_type, got[0]?.sender_id, got[0]?.payload], ["client", "sender-app", { text: "from a client" }]);
  const done = await sender.realtime.sendCommand("receiver", "WHO", null, { timeout: 10 });
  assert.deepEqual([done.status, done.response], ["answered", { command: "WHO", from: "client:sender-app" }]);
  await assert.rejects(
    sender.realtime.sendCommand("nobody-home", "WHO", null),
    (error: unknown) => error instanceof LiveError && error.code === "USER_OFFLINE",
  );
  await assert.rejects(
    receiver.realtime.sendUserMessage("sender-app", "no capability"),
    (error: unknown) => error instanceof LiveError && error.code === "FORBIDDEN",
  );
  receiver.realtime.close();
  sender.realtime.close();
});

test("a subscriber cut mid-stream by a server restart resumes, receiving every message exactly once and in order", async () => {
  await rest.channelCreate({ name: "ticker", type: "public" });
  const { realtime, events } = connect({ client_id: "ticker-reader", channels: ["ticker"], ttl_seconds: 600 });
  const ticker = realtime.subscribe("ticker");
  const confirmations: SubscribedEvent[] = [];
  ticker.on("subscribed", (event) => confirmations.push(event));
  await realtime.connect();
  const messages = await listen(ticker);

  // The publisher retries through the restart; its idempotency keys keep a retried
  // publish from being published twice.
  const publisher = new RealtimeClient({
    baseUrl: server.url,
    apiKey: server.apiKey,
    retry: { maxRetries: 200, initialDelayMs: 20, maxDelayMs: 100 },
  });
  const total = 80;
  let restarted: Promise<void> | undefined;
  for (let n = 0; n < total; n++) {
    await publisher.publish({ channel: "ticker", event: "tick", data: n });
    if (n === 30) restarted = server.restart();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await restarted;
  // What the connection went through, should this test fail.
  const story = () => JSON.stringify({ disconnected: events.disconnected, confirmations, received: messages.length });
  await until(() => messages.length >= total, `${total} messages: ${story()}`, 20_000);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.deepEqual(messages.map((message) => message.data), [...Array(total).keys()], story());
  const offsets = messages.map((message) => message.offset);
  assert.deepEqual(offsets, offsets.map((_, index) => offsets[0]! + index), "consecutive offsets");
  assert.ok(events.disconnected.some((event) => event.code === 4200), `the restart cut the connection: ${story()}`);
  const resumed = confirmations.filter((event) => event.resubscribed);
  assert.ok(resumed.length >= 1, story());
  assert.ok(resumed.every((event) => event.recovered === true), story());
  realtime.close();
});
