// A subscription resumes where it was: every re-subscription carries the position of the
// last message received, the replay continues the stream without a repeat, and a replay
// the server cannot make is reported.

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import type { RecoveryFailed, SubscribedEvent } from "../../src/index.js";

import { type FakeSocket, closeOpened, harness } from "./harness.js";

afterEach(closeOpened);

const message = (channel: string, offset: number, epoch = `ch_${channel}`) => ({
  type: "message",
  channel,
  message_id: `${channel}-${offset}`,
  epoch,
  offset,
  event: "e",
  data: offset,
  published_at: "2026-01-01T00:00:00Z",
});

const subscribed = (channel: string, offset: number, fields: object = {}) => ({
  type: "subscribed",
  channel,
  members: [],
  position: { epoch: `ch_${channel}`, offset },
  ...fields,
});

const subscribeFrames = (socket: FakeSocket) => socket.sentOf("subscribe");

test("after a reconnection each channel is asked for from the last message received on it, else from its `subscribed` position", async () => {
  const h = harness();
  const a = h.realtime.subscribe("a");
  h.realtime.subscribe("b");
  h.realtime.connect().catch(() => {});
  const first = await h.socket(1);
  first.accept();
  assert.deepEqual(subscribeFrames(first), [
    { type: "subscribe", channel: "a" },
    { type: "subscribe", channel: "b" },
  ]);
  first.deliver(subscribed("a", 5));
  first.deliver(subscribed("b", 0));
  first.deliver(message("a", 6));
  first.deliver(message("a", 7));
  assert.deepEqual(a.position, { epoch: "ch_a", offset: 7 });
  first.closeWith(4200);
  const second = await h.socket(2);
  second.accept();
  assert.deepEqual(subscribeFrames(second), [
    { type: "subscribe", channel: "a", since: { epoch: "ch_a", offset: 7 } },
    { type: "subscribe", channel: "b", since: { epoch: "ch_b", offset: 0 } },
  ]);
});

test("the replay after a reconnection continues the stream: each message once, in order, and `recovered: true` is reported", async () => {
  const h = harness();
  const a = h.realtime.subscribe("a");
  const got: number[] = [];
  const events: SubscribedEvent[] = [];
  a.on("message", (frame) => got.push(frame.offset));
  a.on("subscribed", (event) => events.push(event));
  h.realtime.connect().catch(() => {});
  const first = await h.socket(1);
  first.accept();
  first.deliver(subscribed("a", 5));
  first.deliver(message("a", 6));
  first.closeWith(1006);
  const second = await h.socket(2);
  second.accept();
  second.deliver(subscribed("a", 6, { recovered: true }));
  // The replay (7, 8), then the live stream, which here overlaps it by one.
  for (const offset of [7, 8, 8, 9]) second.deliver(message("a", offset));
  assert.deepEqual(got, [6, 7, 8, 9]);
  assert.deepEqual(events, [
    { channel: "a", members: [], resubscribed: false, position: { epoch: "ch_a", offset: 5 } },
    { channel: "a", members: [], resubscribed: true, position: { epoch: "ch_a", offset: 6 }, recovered: true },
  ]);
  assert.equal(a.lastMessage?.offset, 9);
});

test("`recovered: false` is reported as `recoveryFailed` with its reason, and the subscription goes on from the position given", async () => {
  const h = harness();
  const a = h.realtime.subscribe("a");
  const failures: RecoveryFailed[] = [];
  const events: SubscribedEvent[] = [];
  const got: number[] = [];
  a.on("recoveryFailed", (event) => failures.push(event));
  a.on("subscribed", (event) => events.push(event));
  a.on("message", (frame) => got.push(frame.offset));
  h.realtime.connect().catch(() => {});
  const first = await h.socket(1);
  first.accept();
  first.deliver(subscribed("a", 0));
  first.deliver(message("a", 1));
  first.closeWith(4201);
  const second = await h.socket(2);
  second.accept();
  second.deliver(subscribed("a", 1500, { recovered: false, recovery_failure: "too_many" }));
  second.deliver(message("a", 1501));
  assert.deepEqual(failures, [
    { channel: "a", reason: "too_many", since: { epoch: "ch_a", offset: 1 }, position: { epoch: "ch_a", offset: 1500 } },
  ]);
  assert.equal(events[1]?.recovered, false);
  assert.equal(events[1]?.recoveryFailure, "too_many");
  assert.deepEqual(got, [1, 1501]);
  second.closeWith(4200);
  const third = await h.socket(3);
  third.accept();
  assert.deepEqual(subscribeFrames(third), [{ type: "subscribe", channel: "a", since: { epoch: "ch_a", offset: 1501 } }]);
});

test("a subscription made with `since` asks for it at once; a new epoch is a recovery failure, and its messages are not taken for repeats", async () => {
  const h = harness();
  const a = h.realtime.subscribe("a", { since: { epoch: "ch_old", offset: 40 } });
  const failures: RecoveryFailed[] = [];
  const got: number[] = [];
  a.on("recoveryFailed", (event) => failures.push(event));
  a.on("message", (frame) => got.push(frame.offset));
  h.realtime.connect().catch(() => {});
  const socket = await h.socket(1);
  socket.accept();
  assert.deepEqual(subscribeFrames(socket), [{ type: "subscribe", channel: "a", since: { epoch: "ch_old", offset: 40 } }]);
  socket.deliver(subscribed("a", 2, { recovered: false, recovery_failure: "epoch_changed" }));
  socket.deliver(message("a", 3));
  assert.deepEqual(failures.map((event) => event.reason), ["epoch_changed"]);
  assert.deepEqual(got, [3]);
});
