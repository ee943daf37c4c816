import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import {
  type Closed,
  ConnectionLost,
  LiveError,
  type PresenceChange,
  Realtime,
  type SubscribedEvent,
  TokenRefused,
  withToken,
} from "../../src/index.js";

import { FakeSocket, closeOpened, harness, settle, until } from "./harness.js";

afterEach(closeOpened);

test("connects with the provider's token in the query of its endpoint; connect() resolves with `connected`", async () => {
  const h = harness();
  const connected = h.realtime.connect();
  const socket = await h.socket(1);
  assert.equal(socket.url, "ws://gateway.test/v1/realtime/ws?token=token-01");
  socket.accept();
  assert.equal((await connected).client_id, "me");
  assert.equal(h.realtime.state, "connected");
  h.realtime.close();
  assert.deepEqual(socket.closedWith, { code: 1000, reason: "closed by the client" });
  assert.deepEqual(h.events.closed, [{ code: 1000, reason: "closed by the client" }]);
});

test("subscribes to every wanted channel when connected, and again after a reconnection", async () => {
  const h = harness();
  const room = h.realtime.subscribe("room");
  const seen: SubscribedEvent[] = [];
  room.on("subscribed", (event) => seen.push(event));
  h.realtime.connect().catch(() => {});
  const first = await h.socket(1);
  first.accept();
  assert.deepEqual(first.subscriptions(), ["room"]);
  first.deliver({ type: "subscribed", channel: "room", members: [], position: { epoch: "ch_room", offset: 0 } });
  h.realtime.subscribe("late");
  assert.deepEqual(first.subscriptions(), ["room", "late"]);

  first.closeWith(4200, "the server is shutting down");
  const second = await h.socket(2);
  assert.equal(h.events.disconnected[0]?.retryInMs, 0, "4200 reconnects at once");
  second.accept();
  assert.deepEqual(second.subscriptions(), ["room", "late"]);
  second.deliver({ type: "subscribed", channel: "room", members: [], position: { epoch: "ch_room", offset: 0 }, recovered: true });
  assert.deepEqual(seen.map((event) => event.resubscribed), [false, true]);
  assert.equal(h.tokens, 1, "the token was still good");
  h.realtime.close();
});

test("unsubscribing sends `unsubscribe`, and the channel is not asked for again", async () => {
  const h = harness();
  const room = h.realtime.subscribe("room");
  h.realtime.connect().catch(() => {});
  const first = await h.socket(1);
  first.accept();
  room.unsubscribe();
  assert.deepEqual(first.sent.at(-1), { type: "unsubscribe", channel: "room" });
  assert.equal(room.state, "unsubscribed");
  first.closeWith(4201);
  (await h.socket(2)).accept();
  assert.deepEqual(h.sockets[1]!.subscriptions(), []);
  h.realtime.close();
});

test("sends a ping every three quarters of the announced heartbeat interval", async () => {
  const h = harness();
  h.realtime.connect().catch(() => {});
  const socket = await h.socket(1);
  socket.accept({ heartbeat_interval_seconds: 1, heartbeat_timeout_seconds: 60 });
  await until(() => socket.sent.some((frame) => frame.type === "ping"), "a ping", 1_000);
  h.realtime.close();
});

test("a server silent for its heartbeat timeout is dropped, and the connection comes back", async () => {
  const h = harness();
  h.realtime.connect().catch(() => {});
  const socket = await h.socket(1);
  socket.accept({ heartbeat_interval_seconds: 1, heartbeat_timeout_seconds: 2 });
  await h.socket(2);
  assert.match(h.events.disconnected[0]?.reason ?? "", /sent nothing for 2000 ms/);
  assert.equal(socket.closedWith?.code, 1000);
  h.realtime.close();
});

test("on 4002 it takes a fresh token and reconnects at once, keeping its subscriptions", async () => {
  const h = harness();
  h.realtime.subscribe("room");
  h.realtime.connect().catch(() => {});
  const first = await h.socket(1);
  first.accept();
  first.closeWith(4002, "the token expired");
  const second = await h.socket(2);
  assert.equal(second.url, "ws://gateway.test/v1/realtime/ws?token=token-02");
  assert.deepEqual(h.events.disconnected.map((event) => [event.code, event.action, event.retryInMs]), [[4002, "refresh-token", 0]]);
  second.accept();
  assert.deepEqual(second.subscriptions(), ["room"]);
  h.realtime.close();
});

test("the next token is fetched before the current one expires, so 4002 waits on no backend", async () => {
  const h = harness({ lifetimeMs: 1_500 });
  h.realtime.connect().catch(() => {});
  const first = await h.socket(1);
  first.accept({ expires_at: new Date(Date.now() + 1_500).toISOString() });
  await until(() => h.tokens === 2, "a prefetched token", 2_000);
  first.closeWith(4002);
  const second = await h.socket(2);
  assert.equal(second.url.endsWith("token-02"), true);
  assert.equal(h.tokens, 2);
  h.realtime.close();
});

for (const code of [4001, 4003, 4004, 4005, 4006]) {
  test(`${code} stops the connection for good and reports the code`, async () => {
    const h = harness();
    const connected = h.realtime.connect();
    const socket = await h.socket(1);
    socket.accept();
    await connected;
    socket.closeWith(code, "no");
    await settle();
    assert.deepEqual(h.events.closed, [{ code, reason: "no" }]);
    assert.equal(h.sockets.length, 1, "no reconnection");
    assert.equal(h.realtime.state, "closed");
  });
}

test("a close code before `connected` also stops it, and connect() rejects with it", async () => {
  const h = harness();
  const connected = h.realtime.connect();
  (await h.socket(1)).closeWith(4003, "revoked");
  await assert.rejects(connected, (error: unknown) => error instanceof ConnectionLost && error.code === 4003);
});

test("4100, 4101 and a dropped network reconnect after a backoff", async () => {
  const h = harness({ reconnect: { initialDelayMs: 40, maxDelayMs: 1_000 } });
  h.realtime.connect().catch(() => {});
  (await h.socket(1)).accept();
  h.sockets[0]!.closeWith(4100);
  (await h.socket(2)).accept();
  h.sockets[1]!.closeWith(4101);
  (await h.socket(3)).accept();
  h.sockets[2]!.closeWith(1006);
  await h.socket(4);
  assert.deepEqual(h.events.disconnected.map((event) => event.action), ["backoff", "backoff", "backoff"]);
  for (const event of h.events.disconnected) assert.ok(event.retryInMs >= 20 && event.retryInMs <= 40, `${event.retryInMs}`);
  h.realtime.close();
});

test("failed attempts back off further each time and renew the token after three", async () => {
  const h = harness({ reconnect: { initialDelayMs: 2, maxDelayMs: 1_000 } });
  h.realtime.connect().catch(() => {});
  for (let n = 1; n <= 4; n++) (await h.socket(n)).closeWith(1006);
  await h.socket(5);
  const delays = h.events.disconnected.map((event) => event.retryInMs);
  assert.ok(delays[3]! >= 16 && delays[3]! <= 32, `${delays}`);
  assert.equal(h.tokens, 2, "a fresh token after three failures in a row");
  h.realtime.close();
});

test("gives up after maxAttempts failures in a row", async () => {
  const h = harness({ reconnect: { initialDelayMs: 1, maxDelayMs: 2, maxAttempts: 2 } });
  const connected = h.realtime.connect();
  (await h.socket(1)).closeWith(1006);
  (await h.socket(2)).closeWith(1006);
  await assert.rejects(connected, ConnectionLost);
  assert.match(h.events.closed[0]?.reason ?? "", /gave up after 2 failed attempts/);
});

test("presence members follow `subscribed`, joins and leaves, and a re-subscription brings them up to date", async () => {
  const h = harness();
  const room = h.realtime.subscribe("room");
  const changes: PresenceChange[] = [];
  room.on("presence", (change) => changes.push(change));
  h.realtime.connect().catch(() => {});
  const first = await h.socket(1);
  first.accept();
  first.deliver({ type: "subscribed", channel: "room", members: [{ client_id: "me" }, { client_id: "ann" }], position: { epoch: "ch_room", offset: 3 } });
  first.deliver({ type: "presence.join", channel: "room", member: { client_id: "bob", user_id: "u-bob" } });
  first.deliver({ type: "presence.leave", channel: "room", member: { client_id: "ann" } });
  assert.deepEqual(room.members.map((member) => member.client_id), ["me", "bob"]);
  first.closeWith(4200);
  const second = await h.socket(2);
  second.accept();
  second.deliver({ type: "subscribed", channel: "room", members: [{ client_id: "me" }, { client_id: "cy" }], position: { epoch: "ch_room", offset: 3 }, recovered: true });
  assert.deepEqual(room.members.map((member) => member.client_id), ["me", "cy"]);
  assert.deepEqual(changes.map((change) => change.action), ["sync", "join", "leave", "sync"]);
  h.realtime.close();
});

test("messages reach their channel's subscription in order; frames this client does not know are ignored", async () => {
  const h = harness();
  const a = h.realtime.subscribe("a");
  const b = h.realtime.subscribe("b");
  const got: string[] = [];
  a.on("message", (message) => got.push(`a:${message.data}`));
  b.on("message", (message) => got.push(`b:${message.data}`));
  h.realtime.connect().catch(() => {});
  const socket = await h.socket(1);
  socket.accept();
  const message = (channel: string, n: number) => ({ type: "message", channel, message_id: `m${n}`, epoch: `ch_${channel}`, offset: n, event: "e", data: n, published_at: "2026-01-01T00:00:00Z" });
  socket.deliver(message("a", 1));
  socket.deliver({ type: "some.future.frame", channel: "a" });
  socket.onmessage?.({ data: "not json" });
  socket.deliver(message("b", 2));
  socket.deliver(message("a", 3));
  assert.deepEqual(got, ["a:1", "b:2", "a:3"]);
  assert.equal(a.lastMessage?.message_id, "m3");
  h.realtime.close();
});

test("a refused subscription is final for NOT_FOUND and FORBIDDEN, and asked again for anything else", async () => {
  const h = harness();
  const missing = h.realtime.subscribe("missing");
  const flaky = h.realtime.subscribe("flaky");
  const errors: string[] = [];
  missing.on("error", (error) => errors.push(error.code));
  flaky.on("error", (error) => errors.push(error.code));
  h.realtime.connect().catch(() => {});
  const first = await h.socket(1);
  first.accept();
  first.deliver({ type: "error", code: "NOT_FOUND", message: "no such channel", channel: "missing" });
  first.deliver({ type: "error", code: "UNAVAILABLE", message: "retry", channel: "flaky" });
  assert.deepEqual(errors, ["NOT_FOUND", "UNAVAILABLE"]);
  assert.equal(missing.state, "failed");
  first.closeWith(4200);
  const second = await h.socket(2);
  second.accept();
  assert.deepEqual(second.subscriptions(), ["flaky"]);
  h.realtime.close();
});

test("a channel deleted by the server ends its subscription", async () => {
  const h = harness();
  const room = h.realtime.subscribe("room");
  const reasons: string[] = [];
  room.on("unsubscribed", (event) => reasons.push(event.reason));
  h.realtime.connect().catch(() => {});
  const socket = await h.socket(1);
  socket.accept();
  socket.deliver({ type: "unsubscribed", channel: "room", reason: "channel_deleted" });
  assert.deepEqual(reasons, ["channel_deleted"]);
  assert.deepEqual(h.realtime.subscriptions, []);
  h.realtime.close();
});

test("publish resolves with `published`, rejects with LiveError when refused and with ConnectionLost when cut off", async () => {
  const h = harness();
  await assert.rejects(h.realtime.publish("room", "e", 1), ConnectionLost);
  h.realtime.connect().catch(() => {});
  const socket = await h.socket(1);
  socket.accept();
  const ok = h.realtime.publish("room", "e", { n: 1 });
  const refused = h.realtime.publish("room", "e", { n: 2 });
  const cut = h.realtime.publish("room", "e", { n: 3 });
  const [p1, p2] = socket.sent.filter((frame) => frame.type === "publish");
  assert.deepEqual({ ...p1, request_id: undefined }, { type: "publish", channel: "room", event: "e", data: { n: 1 }, request_id: undefined });
  socket.deliver({ type: "published", request_id: p1!.request_id, message_id: "m1", delivered: 2 });
  socket.deliver({ type: "error", code: "INSUFFICIENT_CREDIT", message: "top up", channel: "room", request_id: p2!.request_id });
  assert.equal((await ok).message_id, "m1");
  await assert.rejects(refused, (error: unknown) => error instanceof LiveError && error.code === "INSUFFICIENT_CREDIT");
  socket.closeWith(1006);
  await assert.rejects(cut, ConnectionLost);
  h.realtime.close();
});

test("a provider that throws TokenRefused stops the connection; other provider failures are retried", async () => {
  let calls = 0;
  const realtime = new Realtime({
    WebSocket: FakeSocket,
    reconnect: { initialDelayMs: 1, maxDelayMs: 2 },
    token: async () => {
      calls += 1;
      if (calls === 1) throw new Error("backend down");
      throw new TokenRefused("signed out");
    },
  });
  const closed: Closed[] = [];
  realtime.on("closed", (event) => closed.push(event));
  await assert.rejects(realtime.connect(), ConnectionLost);
  assert.equal(calls, 2);
  assert.deepEqual(closed, [{ reason: "no token: signed out" }]);
});

test("without a WebSocket in the runtime or the options, the constructor says what to do", () => {
  const saved = (globalThis as { WebSocket?: unknown }).WebSocket;
  delete (globalThis as { WebSocket?: unknown }).WebSocket;
  try {
    assert.throws(() => new Realtime({ token: async () => ({ token: "", endpoint: "", expires_at: "" }) }), /experimental-websocket/);
  } finally {
    if (saved) (globalThis as { WebSocket?: unknown }).WebSocket = saved;
  }
});

test("the token goes in the query of the endpoint, which must be a ws:// or wss:// URL", () => {
  assert.equal(withToken("ws://127.0.0.1:1/v1/realtime/ws", "a.b+c"), "ws://127.0.0.1:1/v1/realtime/ws?token=a.b%2Bc");
  assert.equal(withToken("wss://h/ws?region=eu", "t"), "wss://h/ws?region=eu&token=t");
  assert.throws(() => withToken("http://h/ws", "t"), /not a ws:\/\/ or wss:\/\/ URL/);
});

test("a listener that throws neither stops the other listeners nor the connection", async () => {
  const h = harness();
  const room = h.realtime.subscribe("room");
  const got: unknown[] = [];
  room.on("message", () => {
    throw new Error("a bug in the application");
  });
  room.on("message", (message) => got.push(message.data));
  // The errors are rethrown from a microtask, as uncaught errors; caught here instead.
  const reported: (() => void)[] = [];
  const queueMicrotask = globalThis.queueMicrotask;
  globalThis.queueMicrotask = (callback) => reported.push(callback);
  try {
    h.realtime.connect().catch(() => {});
    const socket = await h.socket(1);
    socket.accept();
    socket.deliver({ type: "message", channel: "room", message_id: "m1", epoch: "ch_room", offset: 1, event: "e", data: 1, published_at: "2026-01-01T00:00:00Z" });
    socket.deliver({ type: "message", channel: "room", message_id: "m2", epoch: "ch_room", offset: 2, event: "e", data: 2, published_at: "2026-01-01T00:00:00Z" });
  } finally {
    globalThis.queueMicrotask = queueMicrotask;
  }
  assert.deepEqual(got, [1, 2]);
  assert.equal(reported.length, 2);
  for (const report of reported) assert.throws(report, /a bug in the application/);
  assert.equal(h.realtime.state, "connected");
});
