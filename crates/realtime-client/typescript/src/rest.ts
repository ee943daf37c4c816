// The REST client: one method per operation of openapi/realtime.openapi.json, whose
// methods and paths come from the generated route table and whose types are generated.

import { backoff, sleep } from "./backoff.js";
import { ApiError, TransportError } from "./errors.js";
import { OPERATIONS, type OperationId } from "./generated/contract.js";
import type { ErrorCode, OperationInput, Problem, QueryParams, RequestBody, ResponseBody } from "./types.js";

/** How failed calls are retried. */
export interface RetryPolicy {
  /** Retries after the first attempt; 0 turns retrying off. Default 3. */
  maxRetries: number;
  /** The delay before the first retry, before jitter. Default 200 ms. */
  initialDelayMs: number;
  /** The longest wait between two attempts, `Retry-After` included. Default 10 s. */
  maxDelayMs: number;
}

/** Settings of a {@link RealtimeClient}. */
export interface ClientOptions {
  /** The server, e.g. `http://127.0.0.1:8080` (a path prefix is kept). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer`. A secret: keep it on a server, never in a page. */
  apiKey: string;
  /** How failed calls are retried. */
  retry?: Partial<RetryPolicy>;
  /** The longest one attempt may take, answer included. Default 30 s. */
  timeoutMs?: number;
  /** The `fetch` to use; the platform's by default. */
  fetch?: typeof fetch;
}

/** Per-call settings. */
export interface CallOptions {
  /**
   * For `POST` and `DELETE`: the `Idempotency-Key`. By default the body's
   * `idempotency_key`, else a fresh random key. Every retry of the call reuses it, so a
   * call acts at most once however often it is retried.
   */
  idempotencyKey?: string;
  /** Cancels the call, retries included. */
  signal?: AbortSignal;
}

/** An answer, with what the headers said about it. */
export interface Reply<T> {
  /** The JSON body of the 200 answer. */
  body: T;
  /** The server replayed the answer stored under the idempotency key (`Idempotent-Replayed`). */
  replayed: boolean;
  /** The idempotency key sent, for `POST` and `DELETE`. */
  idempotencyKey?: string;
}

const DEFAULT_RETRY: RetryPolicy = { maxRetries: 3, initialDelayMs: 200, maxDelayMs: 10_000 };

/**
 * A client of one server, for one API key. Every operation of the contract is a method;
 * {@link RealtimeClient.call} reaches any of them by operation id.
 *
 * Failed calls are retried (network failures, 5xx, 429 and 409 `IDEMPOTENCY_KEY_IN_USE`)
 * with exponential backoff and jitter, honouring `Retry-After`. A problem answer is thrown
 * as an {@link ApiError} carrying the contract's `code`.
 */
export class RealtimeClient {
  readonly #baseUrl: string;
  readonly #apiKey: string;
  readonly #retry: RetryPolicy;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(options: ClientOptions) {
    this.#baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.#apiKey = options.apiKey;
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    const platformFetch = options.fetch ?? globalThis.fetch;
    if (typeof platformFetch !== "function") {
      throw new TypeError("no fetch in this runtime: pass `fetch` in the options");
    }
    // Called unbound, some platforms' fetch throws "Illegal invocation".
    this.#fetch = (input, init) => platformFetch(input, init);
  }

  /** `realtime.token.issue`: a client token for the WebSocket gateway (billed). */
  tokenIssue(body: RequestBody<"realtime.token.issue">, options?: CallOptions) {
    return this.#body("realtime.token.issue", { body }, options);
  }

  /** `realtime.token.revoke`: revokes a token (by the token or its `jti`); its sockets close with 4003. */
  tokenRevoke(body: RequestBody<"realtime.token.revoke">, options?: CallOptions) {
    return this.#body("realtime.token.revoke", { body }, options);
  }

  /** `realtime.channel.create`: creates a channel, or gets the existing one of that type. */
  channelCreate(body: RequestBody<"realtime.channel.create">, options?: CallOptions) {
    return this.#body("realtime.channel.create", { body }, options);
  }

  /** `realtime.channel.get`: a channel and its live state. */
  channelGet(channel: string, options?: CallOptions) {
    return this.#body("realtime.channel.get", { path: { channel } }, options);
  }

  /** `realtime.channel.list`: one page of channels; pass `next_cursor` as `cursor` for the next. */
  channelList(query?: QueryParams<"realtime.channel.list">, options?: CallOptions) {
    return this.#body("realtime.channel.list", query ? { query } : {}, options);
  }

  /**
   * `realtime.channel.history`: one page of a channel's recent messages, with their
   * positions; `query` chooses where to start (`since`), how many and in which direction.
   */
  channelHistory(channel: string, query?: QueryParams<"realtime.channel.history">, options?: CallOptions) {
    return this.#body("realtime.channel.history", { path: { channel }, ...(query ? { query } : {}) }, options);
  }

  /** `realtime.channel.delete`: deletes a channel; its subscribers get `unsubscribed`. */
  channelDelete(channel: string, options?: CallOptions) {
    return this.#body("realtime.channel.delete", { path: { channel } }, options);
  }

  /** `realtime.publish`: publishes one event (billed). */
  publish(body: RequestBody<"realtime.publish">, options?: CallOptions) {
    return this.#body("realtime.publish", { body }, options);
  }

  /** `realtime.publish.batch`: publishes several events in one call (each billed). */
  publishBatch(body: RequestBody<"realtime.publish.batch">, options?: CallOptions) {
    return this.#body("realtime.publish.batch", { body }, options);
  }

  /** `realtime.presence.get`: the members of a presence channel. */
  presenceGet(channel: string, options?: CallOptions) {
    return this.#body("realtime.presence.get", { path: { channel } }, options);
  }

  /** `realtime.auth.sign`: signs a channel authorization for Pusher, Ably or Liveblocks (billed). */
  authSign(body: RequestBody<"realtime.auth.sign">, options?: CallOptions) {
    return this.#body("realtime.auth.sign", { body }, options);
  }

  /** `realtime.event.types`: the `type` of every frame the gateway sends. */
  eventTypes(options?: CallOptions) {
    return this.#body("realtime.event.types", {}, options);
  }

  /** `realtime.user.disconnect`: closes a client's sockets (4004), or its subscription to one channel. */
  userDisconnect(body: RequestBody<"realtime.user.disconnect">, options?: CallOptions) {
    return this.#body("realtime.user.disconnect", { body }, options);
  }

  /**
   * `realtime.user.message.send`: a message to every live connection of a user (billed).
   * `realtime` delivery reaches only those connected now (409 `USER_OFFLINE` is not
   * raised: `delivered` says how many); `reliable` is stored and delivered until a client
   * acknowledges it (409 `BACKLOG_FULL` when the user has 1000 unacknowledged).
   */
  userMessageSend(body: RequestBody<"realtime.user.message.send">, options?: CallOptions) {
    return this.#body("realtime.user.message.send", { body }, options);
  }

  /**
   * `realtime.user.command.send`: a command to a user's live connections (billed); by
   * default waits for the first response (`status: "answered"`, `response`). Throws 409
   * `USER_OFFLINE` when the user has no live connection, and 504 `COMMAND_TIMEOUT` when
   * no answer came within the wait (at most 25 s), which is not retried: the command went
   * out and may still be answered. To wait longer, send with `wait_for_response: false`
   * and read it with {@link RealtimeClient.userCommandGet}.
   */
  userCommandSend(body: RequestBody<"realtime.user.command.send">, options?: CallOptions) {
    return this.#body("realtime.user.command.send", { body }, options);
  }

  /** `realtime.user.command.get`: a command sent by this account: pending, answered (with its response) or expired. */
  userCommandGet(commandId: string, options?: CallOptions) {
    return this.#body("realtime.user.command.get", { path: { command_id: commandId } }, options);
  }

  /** `account.get`: the account and its balance. */
  accountGet(options?: CallOptions) {
    return this.#body("account.get", {}, options);
  }

  /** `account.topup`: starts a top-up; answers a `checkout_url`. */
  accountTopup(body: RequestBody<"account.topup">, options?: CallOptions) {
    return this.#body("account.topup", { body }, options);
  }

  /**
   * Any operation by its id, with the answer's replay flag and the idempotency key used.
   *
   * ```ts
   * const reply = await client.call("realtime.publish", { body: { channel, event, data } }, { idempotencyKey });
   * if (reply.replayed) console.log("published before, answer replayed");
   * ```
   */
  async call<Id extends OperationId>(
    id: Id,
    input: OperationInput<Id>,
    options: CallOptions = {},
  ): Promise<Reply<ResponseBody<Id>>> {
    const route = OPERATIONS[id];
    const url = this.#url(route.path, input as Input);
    const writes = route.method === "POST" || route.method === "DELETE";
    const body = (input as Input).body;
    const idempotencyKey = writes
      ? options.idempotencyKey ?? bodyKey(body) ?? newIdempotencyKey()
      : undefined;
    const headers: Record<string, string> = { authorization: `Bearer ${this.#apiKey}`, accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (idempotencyKey !== undefined) headers["idempotency-key"] = idempotencyKey;
    const request = { method: route.method, headers, body: body === undefined ? undefined : JSON.stringify(body) };

    for (let retry = 0; ; retry++) {
      try {
        const { body, replayed } = await this.#attempt(id, url, request, options.signal);
        return { body: body as ResponseBody<Id>, replayed, ...(idempotencyKey ? { idempotencyKey } : {}) };
      } catch (error) {
        if (options.signal?.aborted || retry >= this.#retry.maxRetries || !isRetryable(error)) throw error;
        const retryAfterMs = error instanceof ApiError && error.retryAfterSeconds !== undefined
          ? error.retryAfterSeconds * 1000
          : undefined;
        const delay = Math.min(
          this.#retry.maxDelayMs,
          retryAfterMs ?? backoff(this.#retry.initialDelayMs, this.#retry.maxDelayMs, retry),
        );
        await sleep(delay, options.signal);
      }
    }
  }

  async #body<Id extends OperationId>(id: Id, input: Input, options?: CallOptions): Promise<ResponseBody<Id>> {
    return (await this.call(id, input as OperationInput<Id>, options)).body;
  }

  #url(path: string, input: Input): string {
    const filled = path.replace(/\{(\w+)\}/g, (_, name: string) => {
      const value = input.path?.[name];
      if (value === undefined) throw new TypeError(`${path}: the path parameter \`${name}\` is missing`);
      return encodeURIComponent(String(value));
    });
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(input.query ?? {})) {
      if (value !== undefined && value !== null) query.append(name, String(value));
    }
    const search = query.toString();
    return `${this.#baseUrl}${filled}${search ? `?${search}` : ""}`;
  }

  async #attempt(
    id: OperationId,
    url: string,
    request: { method: string; headers: Record<string, string>; body: string | undefined },
    signal: AbortSignal | undefined,
  ): Promise<{ body: unknown; replayed: boolean }> {
    const attempt = new AbortController();
    const timer = setTimeout(
      () => attempt.abort(new TransportError(`${id}: no answer within ${this.#timeoutMs} ms`)),
      this.#timeoutMs,
    );
    const cancel = () => attempt.abort(signal?.reason);
    if (signal?.aborted) cancel();
    signal?.addEventListener("abort", cancel, { once: true });
    try {
      let response: Response;
      let text: string;
      try {
        response = await this.#fetch(url, { ...request, signal: attempt.signal });
        text = await response.text();
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        if (attempt.signal.aborted) throw attempt.signal.reason;
        throw new TransportError(`${id}: ${describe(error)}`, undefined, { cause: error });
      }
      const replayed = response.headers.get("idempotent-replayed") === "true";
      const json = parseJson(text);
      if (response.ok) {
        if (json === undefined) throw new TransportError(`${id}: the answer is not JSON`, response.status);
        return { body: json, replayed };
      }
      if (isProblem(json)) {
        throw new ApiError(id, response.status, json, retryAfterSeconds(response.headers.get("retry-after")));
      }
      throw new TransportError(`${id}: HTTP ${response.status} without a problem body`, response.status);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", cancel);
    }
  }
}

/** The parts of a call's input, untyped. */
interface Input {
  body?: unknown;
  path?: Record<string, unknown>;
  query?: Record<string, unknown>;
}

/** Whether a failed attempt is worth another: its effect, if any, is fenced by the key. */
export function isRetryable(error: unknown): boolean {
  if (error instanceof ApiError) return isRetryableStatus(error.status, error.code);
  if (error instanceof TransportError) return error.status === undefined || isRetryableStatus(error.status);
  return false;
}

/**
 * 429, 5xx (but 501 and 505, which waiting does not change, and 504 `COMMAND_TIMEOUT`,
 * which is an answer: the command went out and no client answered in time), and a key
 * still in use.
 */
export function isRetryableStatus(status: number, code?: ErrorCode): boolean {
  if (status === 429) return true;
  if (status === 409) return code === "IDEMPOTENCY_KEY_IN_USE";
  if (status === 501 || status === 505 || code === "COMMAND_TIMEOUT") return false;
  return status >= 500 && status <= 599;
}

/** A fresh idempotency key: 128 random bits (also where `crypto.randomUUID` is missing, on plain-http pages). */
export function newIdempotencyKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function bodyKey(body: unknown): string | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const key = (body as { idempotency_key?: unknown }).idempotency_key;
  return typeof key === "string" ? key : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isProblem(value: unknown): value is Problem {
  return typeof value === "object" && value !== null && typeof (value as Problem).code === "string";
}

function retryAfterSeconds(header: string | null): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
    return `${error.message}${cause}`;
  }
  return String(error);
}
