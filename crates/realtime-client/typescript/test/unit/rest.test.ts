import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, RealtimeClient, TransportError } from "../../src/index.js";

interface Seen {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

/** A `fetch` that answers from a script and records what it was asked. */
function scripted(...answers: (Response | Error)[]) {
  const seen: Seen[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    seen.push({
      method: init?.method ?? "GET",
      url: String(input),
      headers: init?.headers as Record<string, string>,
      body: init?.body === undefined ? undefined : JSON.parse(String(init.body)),
    });
    const answer = answers.shift();
    if (answer === undefined) throw new Error("no more scripted answers");
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { fetch: fetch as typeof globalThis.fetch, seen };
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

const problem = (status: number, code: string, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify({ type: `urn:realtime:problem:${code}`, title: code, status, code, detail: "why" }), {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });

const published = { message_id: "m1", channel: "c", event: "e", published_at: "2026-01-01T00:00:00Z", delivered: 1, status: "published" };

const client = (fetch: typeof globalThis.fetch, maxRetries = 3) =>
  new RealtimeClient({ baseUrl: "http://realtime.test/", apiKey: "key", fetch, retry: { maxRetries, initialDelayMs: 1, maxDelayMs: 20 } });

test("a write is sent with the key, the JSON body and an idempotency key, to the route of the contract", async () => {
  const { fetch, seen } = scripted(json(published));
  const answer = await client(fetch).publish({ channel: "c", event: "e", data: { n: 1 } });
  assert.equal(answer.message_id, "m1");
  const [request] = seen;
  assert.equal(request?.method, "POST");
  assert.equal(request?.url, "http://realtime.test/v1/realtime/publish");
  assert.equal(request?.headers.authorization, "Bearer key");
  assert.equal(request?.headers["content-type"], "application/json");
  assert.match(request?.headers["idempotency-key"] ?? "", /^[0-9a-f]{32}$/);
  assert.deepEqual(request?.body, { channel: "c", event: "e", data: { n: 1 } });
});

test("a read carries no idempotency key; path parameters are percent-encoded and queries skip what is unset", async () => {
  const { fetch, seen } = scripted(json({ name: "a/b c" }), json({ channels: [] }));
  await client(fetch).channelGet("a/b c");
  await client(fetch).channelList({ limit: 5 });
  assert.equal(seen[0]?.url, "http://realtime.test/v1/realtime/channel/get/a%2Fb%20c");
  assert.equal(seen[0]?.method, "GET");
  assert.equal(seen[0]?.headers["idempotency-key"], undefined);
  assert.equal(seen[1]?.url, "http://realtime.test/v1/realtime/channel/list?limit=5");
});

test("a problem is thrown as an ApiError carrying the contract's code", async () => {
  const { fetch } = scripted(problem(404, "NOT_FOUND"));
  const error = await client(fetch).publish({ channel: "nope", event: "e", data: null }).catch((e: unknown) => e);
  assert.ok(error instanceof ApiError);
  assert.equal(error.code, "NOT_FOUND");
  assert.equal(error.status, 404);
  assert.equal(error.operation, "realtime.publish");
  assert.equal(error.problem.detail, "why");
});

test("retries of a write reuse its idempotency key, and Retry-After is honoured", async () => {
  const { fetch, seen } = scripted(
    problem(503, "UNAVAILABLE", { "retry-after": "0" }),
    new TypeError("fetch failed"),
    problem(409, "IDEMPOTENCY_KEY_IN_USE"),
    json(published, 200, { "idempotent-replayed": "true" }),
  );
  const reply = await client(fetch).call("realtime.publish", { body: { channel: "c", event: "e", data: 1 } });
  assert.equal(seen.length, 4);
  const keys = new Set(seen.map((request) => request.headers["idempotency-key"]));
  assert.equal(keys.size, 1);
  assert.equal(reply.idempotencyKey, [...keys][0]);
  assert.equal(reply.replayed, true);
});

test("the key is the one given, else the body's idempotency_key", async () => {
  const { fetch, seen } = scripted(json(published), json(published));
  await client(fetch).publish({ channel: "c", event: "e", data: 1 }, { idempotencyKey: "given" });
  await client(fetch).publish({ channel: "c", event: "e", data: 1, idempotency_key: "in-body" });
  assert.deepEqual(seen.map((request) => request.headers["idempotency-key"]), ["given", "in-body"]);
});

test("the user operations: a message and a command are writes with an idempotency key, a command is read by its id", async () => {
  const sent = { message_id: "um_1", target_user_id: "u1", delivery: "reliable", delivered: 0, sequence: 1 };
  const command = { command_id: "cmd_1", target_user_id: "u1", type: "PING", status: "answered", response: { pong: true }, expires_at: "2026-01-01T00:30:00Z" };
  const { fetch, seen } = scripted(json(sent), json(command), json(command));
  const rest = client(fetch);
  const message = await rest.userMessageSend({ target_user_id: "u1", delivery: "reliable", payload: { text: "hi" } }, { idempotencyKey: "m-1" });
  assert.equal(message.sequence, 1);
  const answered = await rest.userCommandSend({ target_user_id: "u1", type: "PING", data: null, timeout: 5 });
  assert.deepEqual(answered.response, { pong: true });
  assert.equal((await rest.userCommandGet("cmd_1/x")).status, "answered");
  assert.deepEqual(
    seen.map((request) => [request.method, request.url]),
    [
      ["POST", "http://realtime.test/v1/realtime/user/message/send"],
      ["POST", "http://realtime.test/v1/realtime/user/command/send"],
      ["GET", "http://realtime.test/v1/realtime/user/command/get/cmd_1%2Fx"],
    ],
  );
  assert.equal(seen[0]?.headers["idempotency-key"], "m-1");
  assert.match(seen[1]?.headers["idempotency-key"] ?? "", /^[0-9a-f]{32}$/);
  assert.equal(seen[2]?.headers["idempotency-key"], undefined);
  assert.deepEqual(seen[1]?.body, { target_user_id: "u1", type: "PING", data: null, timeout: 5 });
});

test("a command nobody answered in time (504 COMMAND_TIMEOUT) is thrown at once, not sent again", async () => {
  const { fetch, seen } = scripted(problem(504, "COMMAND_TIMEOUT"), problem(504, "COMMAND_TIMEOUT"));
  const error = await client(fetch).userCommandSend({ target_user_id: "u1", type: "PING", data: null }).catch((e: unknown) => e);
  assert.ok(error instanceof ApiError);
  assert.equal(error.code, "COMMAND_TIMEOUT");
  assert.equal(error.status, 504);
  assert.equal(seen.length, 1);
});

test("refusals that waiting does not change are not retried", async () => {
  for (const [status, code] of [
    [402, "INSUFFICIENT_CREDIT"],
    [422, "IDEMPOTENCY_KEY_REUSED"],
    [409, "CONFLICT"],
    [409, "USER_OFFLINE"],
    [409, "BACKLOG_FULL"],
    [401, "UNAUTHENTICATED"],
  ] as const) {
    const { fetch, seen } = scripted(problem(status, code), json(published));
    await assert.rejects(client(fetch).publish({ channel: "c", event: "e", data: 1 }), (error: unknown) => error instanceof ApiError && error.code === code);
    assert.equal(seen.length, 1, code);
  }
});

test("retries stop after maxRetries with the last error", async () => {
  const { fetch, seen } = scripted(problem(503, "UNAVAILABLE"), problem(503, "UNAVAILABLE"), problem(500, "INTERNAL"));
  await assert.rejects(client(fetch, 2).eventTypes(), (error: unknown) => error instanceof ApiError && error.code === "INTERNAL");
  assert.equal(seen.length, 3);
});

test("an answer that is not a problem is a TransportError with its status", async () => {
  const { fetch } = scripted(new Response("<html>bad gateway</html>", { status: 502 }));
  const error = await client(fetch, 0).accountGet().catch((e: unknown) => e);
  assert.ok(error instanceof TransportError);
  assert.equal(error.status, 502);
});

test("an attempt that takes too long is abandoned and retried", async () => {
  let calls = 0;
  const fetch = ((_: unknown, init?: RequestInit) => {
    calls += 1;
    if (calls === 2) return Promise.resolve(json({ event_types: [] }));
    return new Promise((_, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal?.reason)));
  }) as typeof globalThis.fetch;
  const slow = new RealtimeClient({ baseUrl: "http://realtime.test", apiKey: "k", fetch, timeoutMs: 20, retry: { initialDelayMs: 1 } });
  await slow.eventTypes();
  assert.equal(calls, 2);
});

test("an aborted call is not retried and rejects with the signal's reason", async () => {
  const controller = new AbortController();
  const fetch = ((_: unknown, init?: RequestInit) =>
    new Promise((_, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal?.reason)))) as typeof globalThis.fetch;
  const pending = new RealtimeClient({ baseUrl: "http://realtime.test", apiKey: "k", fetch }).accountGet({ signal: controller.signal });
  controller.abort(new Error("the user went away"));
  await assert.rejects(pending, /the user went away/);
});
