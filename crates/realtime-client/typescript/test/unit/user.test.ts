// What the server addresses to the connection's user: messages, acknowledged once handled,
// and commands, answered by the application's handler.

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { type Command, ConnectionLost, LiveError, type UserMessage } from "../../src/index.js";

import { closeOpened, harness, settle, until } from "./harness.js";

afterEach(closeOpened);

const reliable = (sequence: number, deliveryCount = 1) => ({
  type: "user.message",
  message_id: `um_${sequence}`,
  delivery: "reliable",
  payload: { n: sequence },
  sender_type: "server",
  sent_at: "2026-01-01T00:00:00Z",
  sequence,
  delivery_count: deliveryCount,
});

const command = (id: string, fields: object = {}) => ({
  type: "user.command",
  command_id: id,
  command: "CREATE_CANVAS",
  data: { name: id },
  sender_type: "server",
  sender_id: "backend",
  expires_at: new Date(Date.now() + 60_000).toISOString(),
  ...fields,
});

/**
 * A harness connected for user `me` with an empty backlog (the `pong` to the connection's
 * first `ping` came), recording the user messages it is handed.
 */
async function connected() {
  const h = harness();
  const messages: UserMessage[] = [];
  h.realtime.on("userMessage", (message) => messages.push(message));
  h.realtime.connect().catch(() => {});
  const socket = await h.socket(1);
  socket.accept({ user_id: "me" });
  socket.deliver({ type: "pong" });
  return { h, messages, socket };
}

/** Acknowledges the handed-over messages of these sequences, in this order. */
function ack(messages: UserMessage[], ...sequences: number[]) {
  for (const sequence of sequences) {
    const message = messages.find((message) => message.delivery === "reliable" && message.sequence === sequence);
    assert.ok(message?.delivery === "reliable", `message ${sequence} was handed over`);
    message.ack();
  }
}

test("user messages are handed over as `userMessage`; a reliable one's ack() sends `ack`, a realtime one has none", async () => {
  const { messages, socket } = await connected();
  socket.deliver({ type: "user.message", message_id: "um_rt", delivery: "realtime", payload: "hi", sender_type: "client", sender_id: "ann", sent_at: "2026-01-01T00:00:00Z" });
  socket.deliver(reliable(1));
  assert.deepEqual(messages.map((message) => [message.message_id, message.delivery, "ack" in message]), [
    ["um_rt", "realtime", false],
    ["um_1", "reliable", true],
  ]);
  const first = messages[1];
  assert.ok(first?.delivery === "reliable");
  assert.deepEqual([first.sequence, first.delivery_count, first.payload], [1, 1, { n: 1 }]);
  first.ack();
  first.ack();
  assert.deepEqual(socket.sentOf("ack"), [{ type: "ack", message_id: "um_1" }]);
});

test("acknowledgements go out in sequence order: a later message's waits for the earlier ones, and one covers them all", async () => {
  const { messages, socket } = await connected();
  for (const sequence of [1, 2, 3]) socket.deliver(reliable(sequence));
  ack(messages, 3);
  assert.deepEqual(socket.sentOf("ack"), [], "1 and 2 are not handled yet");
  ack(messages, 1);
  assert.deepEqual(socket.sentOf("ack"), [{ type: "ack", message_id: "um_1" }]);
  ack(messages, 2);
  assert.deepEqual(socket.sentOf("ack"), [
    { type: "ack", message_id: "um_1" },
    { type: "ack", message_id: "um_3" },
  ]);
});

test("on connect nothing is acknowledged before the backlog is in: a new message arriving among it does not cover it", async () => {
  const h = harness();
  const messages: UserMessage[] = [];
  h.realtime.on("userMessage", (message) => messages.push(message));
  h.realtime.connect().catch(() => {});
  const socket = await h.socket(1);
  socket.accept({ user_id: "me" });
  assert.deepEqual(socket.sentOf("ping"), [{ type: "ping" }], "its pong marks the end of the backlog");
  // A live message first, handled at once; then the backlog it would cover.
  socket.deliver(reliable(4));
  ack(messages, 4);
  socket.deliver(reliable(2, 2));
  socket.deliver(reliable(3, 2));
  assert.deepEqual(socket.sentOf("ack"), []);
  socket.deliver({ type: "pong" });
  assert.deepEqual(socket.sentOf("ack"), [], "2 and 3 are not handled yet");
  ack(messages, 2, 3);
  assert.deepEqual(socket.sentOf("ack"), [
    { type: "ack", message_id: "um_2" },
    { type: "ack", message_id: "um_4" },
  ]);
});

test("a message acknowledged while its socket was down is acknowledged on the next once redelivered, and not handed over twice", async () => {
  const { h, messages, socket } = await connected();
  socket.deliver(reliable(1));
  socket.deliver(reliable(2));
  socket.closeWith(1006);
  ack(messages, 1, 2);
  const next = await h.socket(2);
  next.accept({ user_id: "me" });
  for (const sequence of [1, 2]) next.deliver(reliable(sequence, 2));
  next.deliver(reliable(3));
  next.deliver({ type: "pong" });
  assert.deepEqual(messages.map((message) => message.message_id), ["um_1", "um_2", "um_3"]);
  assert.deepEqual(next.sentOf("ack"), [{ type: "ack", message_id: "um_2" }]);
  ack(messages, 3);
  assert.deepEqual(next.sentOf("ack").at(-1), { type: "ack", message_id: "um_3" });
});

test("a message another device acknowledged (not in the backlog on connect) no longer holds back later acknowledgements", async () => {
  const { h, messages, socket } = await connected();
  socket.deliver(reliable(1));
  socket.closeWith(4200);
  const next = await h.socket(2);
  next.accept({ user_id: "me" });
  next.deliver(reliable(2, 2));
  next.deliver({ type: "pong" });
  ack(messages, 2);
  assert.deepEqual(next.sentOf("ack"), [{ type: "ack", message_id: "um_2" }]);
});

test("the command handler's value is sent as the response, a promise's once it resolves, `undefined` as null", async () => {
  const { h, socket } = await connected();
  const seen: Command[] = [];
  h.realtime.onCommand((received) => {
    seen.push(received);
    if (received.command_id === "c1") return { canvas_id: "canvas-1" };
    if (received.command_id === "c2") return new Promise((resolve) => setTimeout(() => resolve(["later"]), 10));
    return undefined;
  });
  socket.deliver(command("c1"));
  socket.deliver(command("c2"));
  socket.deliver(command("c3"));
  await until(() => socket.sentOf("command.response").length === 3, "three responses");
  assert.deepEqual(socket.sentOf("command.response"), [
    { type: "command.response", command_id: "c1", data: { canvas_id: "canvas-1" } },
    { type: "command.response", command_id: "c3", data: null },
    { type: "command.response", command_id: "c2", data: ["later"] },
  ]);
  assert.deepEqual(seen[0], { ...command("c1"), expires_at: seen[0]?.expires_at });
});

test("a handler that throws answers nothing and its error is reported; without a handler nothing is answered", async () => {
  const { h, socket } = await connected();
  const reported: (() => void)[] = [];
  const queueMicrotask = globalThis.queueMicrotask;
  globalThis.queueMicrotask = (callback) => reported.push(callback);
  try {
    const remove = h.realtime.onCommand((received) => {
      if (received.command_id === "throws") throw new Error("no canvas today");
      return Promise.reject(new Error("rejected"));
    });
    socket.deliver(command("throws"));
    socket.deliver(command("rejects"));
    await settle();
    remove();
    socket.deliver(command("unhandled"));
    await settle();
  } finally {
    globalThis.queueMicrotask = queueMicrotask;
  }
  assert.deepEqual(socket.sentOf("command.response"), []);
  assert.equal(reported.length, 2);
  assert.throws(reported[0]!, /no canvas today/);
  assert.throws(reported[1]!, /rejected/);
});

test("a response that resolves while disconnected goes out on the next connection, unless its command expired", async () => {
  const { h, socket } = await connected();
  const answers = new Map<string, (value: unknown) => void>();
  h.realtime.onCommand((received) => new Promise((resolve) => answers.set(received.command_id, resolve)));
  socket.deliver(command("fresh"));
  socket.deliver(command("stale", { expires_at: new Date(Date.now() + 20).toISOString() }));
  socket.closeWith(1006);
  answers.get("fresh")?.({ ok: 1 });
  answers.get("stale")?.({ ok: 2 });
  await settle();
  const next = await h.socket(2);
  next.accept();
  assert.deepEqual(next.sentOf("command.response"), [{ type: "command.response", command_id: "fresh", data: { ok: 1 } }]);
});

test("a user message sent over the socket resolves with `user.message.sent`; a refusal rejects with its code", async () => {
  const { h, socket } = await connected();
  const accepted = h.realtime.sendUserMessage("bob", { text: "hi" }, { delivery: "reliable" });
  const refused = h.realtime.sendUserMessage("bob", "again");
  const [first, second] = socket.sentOf("user.message.send");
  assert.deepEqual({ ...first, request_id: undefined }, {
    type: "user.message.send",
    target_user_id: "bob",
    payload: { text: "hi" },
    delivery: "reliable",
    request_id: undefined,
  });
  assert.deepEqual(Object.keys(second ?? {}).sort(), ["payload", "request_id", "target_user_id", "type"]);
  socket.deliver({ type: "user.message.sent", request_id: first?.request_id, message_id: "um_9", delivered: 2, sequence: 9 });
  socket.deliver({ type: "error", code: "FORBIDDEN", message: "the token lacks the message capability", request_id: second?.request_id });
  assert.deepEqual(await accepted, { type: "user.message.sent", request_id: first?.request_id, message_id: "um_9", delivered: 2, sequence: 9 });
  await assert.rejects(refused, (error: unknown) => error instanceof LiveError && error.code === "FORBIDDEN");
});

test("a command sent over the socket resolves with `user.command.done`, while other answers go on; a cut connection rejects it", async () => {
  const { h, socket } = await connected();
  const done = h.realtime.sendCommand("bob", "CREATE_CANVAS", { name: "x" }, { timeout: 5 });
  const cut = h.realtime.sendCommand("bob", "SLOW", null);
  const published = h.realtime.publish("room", "e", 1);
  const [first, second] = socket.sentOf("user.command.send");
  assert.deepEqual({ ...first, request_id: undefined }, {
    type: "user.command.send",
    target_user_id: "bob",
    command: "CREATE_CANVAS",
    data: { name: "x" },
    timeout: 5,
    request_id: undefined,
  });
  assert.equal(second?.timeout, undefined);
  socket.deliver({ type: "published", request_id: socket.sentOf("publish")[0]?.request_id, message_id: "m1", epoch: "ch_room", offset: 1, delivered: 0 });
  assert.equal((await published).message_id, "m1");
  socket.deliver({ type: "user.command.done", request_id: first?.request_id, command_id: "cmd_1", status: "answered", response: { ok: true } });
  const answer = await done;
  assert.deepEqual([answer.command_id, answer.status, answer.response], ["cmd_1", "answered", { ok: true }]);
  socket.closeWith(1006);
  await assert.rejects(cut, ConnectionLost);
});
