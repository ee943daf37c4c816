// The package against the reference server, in Node (run with --experimental-websocket on
// Node 20, which gives it the platform WebSocket that Node 22 has built in).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  ApiError,
  type Closed,
  type Disconnected,
  type Message,
  Realtime,
  RealtimeClient,
  type RequestBody,
  type Subscription,
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
  const signed = await rest.authSign({ client_id: "ops", socket_id: "1.2", channels: ["orders"], vendor: "pusher" });
  assert.ok(signed);
  await rest.channelCreate({ name: "scratch", type: "public" });
  assert.equal((await rest.channelDelete("scratch")).deleted, true);
});

test("problems are thrown as ApiErrors with the contract's code", async () => {
  await assert.rejects(rest.channelGet("never-created"), (error: unknown) => error instanceof ApiError && error.code === "NOT_FOUND" && error.status === 404);
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
