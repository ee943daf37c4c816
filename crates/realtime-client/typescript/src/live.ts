// The live connection: one WebSocket to the gateway at a time, kept up. It gets tokens
// from the application's token provider, sends heartbeats, reconnects by the close code
// (src/policy.ts), subscribes again to every channel after a reconnection from the last
// message it received there, keeps the members of presence channels current, and hands
// the messages and commands addressed to its user to the application (src/user.ts).

import { backoff } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { ConnectionLost, LiveError, TokenRefused } from "./errors.js";
import { type Action, actionFor, isCloseCode } from "./policy.js";
import { Subscription } from "./subscription.js";
import type {
  ClientFrame,
  Connected,
  Delivery,
  LiveCommandDone,
  LivePublished,
  LiveUserMessageSent,
  Position,
  RealtimeToken,
  ServerFrame,
} from "./types.js";
import { type CommandHandler, type UserMessage, UserInbox } from "./user.js";

/** What a token provider returns: the answer of `realtime.token.issue`, or these three fields of it. */
export type TokenLike = Pick<RealtimeToken, "token" | "endpoint" | "expires_at">;

/**
 * Gets a fresh token, usually from the application's own backend, which holds the API key
 * and calls `realtime.token.issue` for the signed-in user. Called to connect, when the
 * token has expired (close 4002) and after repeated failures. Throw {@link TokenRefused}
 * to stop for good (the user signed out); any other error is retried with a backoff.
 */
export type TokenProvider = () => Promise<TokenLike>;

/** How the connection comes back. */
export interface ReconnectPolicy {
  /** The delay before the first retry, before jitter. Default 500 ms. */
  initialDelayMs: number;
  /** The longest delay between attempts. Default 15 s. */
  maxDelayMs: number;
  /** Failed attempts in a row after which the connection gives up. Default: never. */
  maxAttempts: number;
}

/** Settings of a {@link Realtime} connection. */
export interface RealtimeOptions {
  /** Where tokens come from. */
  token: TokenProvider;
  /**
   * The WebSocket class. By default the platform's: every browser, Node 22 and later, and
   * Node 20 run with `--experimental-websocket`. Otherwise pass one, e.g. `WebSocket`
   * from the `ws` package.
   */
  WebSocket?: new (url: string) => object;
  /** How the connection comes back. */
  reconnect?: Partial<ReconnectPolicy>;
  /** The longest opening a socket may take, `connected` frame included. Default 10 s. */
  connectTimeoutMs?: number;
}

/** Where the connection is. */
export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

/** A connection ended and another one will be tried. */
export interface Disconnected {
  /** The close code: the gateway's (4xxx), a WebSocket one (1006: the network failed), or none when no socket opened. */
  code?: number;
  /** Why, for people. */
  reason: string;
  /** What the close code called for. */
  action: Action;
  /** The attempt about to be made (1 for the first after a connection was lost). */
  attempt: number;
  /** The wait before it. */
  retryInMs: number;
}

/** The connection stopped for good. */
export interface Closed {
  /** The close code that stopped it (4001, 4003-4006), 1000 when the application closed it. */
  code?: number;
  /** Why, for people. */
  reason: string;
}

/** The events of a {@link Realtime} connection. */
export interface RealtimeEvents {
  /** The state changed. */
  state: ConnectionState;
  /** A socket is open; every wanted channel has been asked for again. */
  connected: Connected;
  /** A socket ended; another will be tried. */
  disconnected: Disconnected;
  /** The connection stopped for good. */
  closed: Closed;
  /** An `error` frame that answers no request and concerns no channel (a refused `ack` or command response, say). */
  error: LiveError;
  /**
   * A message to this connection's user (its token's `user_id`): call `ack()` on a
   * reliable one once it is handled. Unacknowledged reliable messages are delivered
   * again right after every `connected`, so listen before calling `connect()`.
   */
  userMessage: UserMessage;
}

/** The server's answers to the frames the client sends with a `request_id`. */
type Answer = LivePublished | LiveUserMessageSent | LiveCommandDone;

/** How to subscribe. */
export interface SubscribeOptions {
  /**
   * The position of the last message already seen on the channel (a
   * {@link Subscription.position} kept from an earlier connection): the messages after it
   * are replayed first, or `recoveryFailed` says why they cannot be.
   */
  since?: Position;
}

const DEFAULT_RECONNECT: ReconnectPolicy = { initialDelayMs: 500, maxDelayMs: 15_000, maxAttempts: Infinity };

/** Every this many failed attempts in a row, a fresh token is fetched. */
const RENEW_AFTER_FAILURES = 3;

/** A token closer than this to its expiry is not used to connect. */
const EXPIRY_MARGIN_MS = 1_000;

/** The part of the WebSocket interface this client uses; browsers, Node and `ws` all have it. */
interface Socket {
  readonly readyState: number;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** How one socket ended. */
interface Ending {
  code?: number;
  reason: string;
  /** Overrides the close code's action (a silent server, say). */
  action?: Action;
  /** Whether the socket got as far as `connected`. */
  connected: boolean;
}

/**
 * A live connection to the gateway that keeps itself up.
 *
 * ```ts
 * const realtime = new Realtime({ token: () => fetch("/realtime-token").then((r) => r.json()) });
 * const room = realtime.subscribe("room-42");
 * room.on("message", (message) => console.log(message.event, message.data));
 * room.on("presence", ({ members }) => console.log(members.map((m) => m.client_id)));
 * realtime.on("closed", ({ code, reason }) => console.warn("stopped", code, reason));
 * await realtime.connect();
 * ```
 */
export class Realtime extends Emitter<RealtimeEvents> {
  readonly #provider: TokenProvider;
  readonly #WebSocket: new (url: string) => object;
  readonly #policy: ReconnectPolicy;
  readonly #connectTimeoutMs: number;

  #state: ConnectionState = "idle";
  #token: TokenLike | undefined;
  #prefetched: Promise<TokenLike | undefined> | undefined;
  #prefetchTimer: ReturnType<typeof setTimeout> | undefined;
  #socket: Socket | undefined;
  #connection: Connected | undefined;
  #endSocket: ((reason: string) => void) | undefined;
  #wake: (() => void) | undefined;
  #subscriptions = new Map<string, Subscription>();
  #pending = new Map<string, { resolve: (frame: Answer) => void; reject: (error: Error) => void }>();
  #requests = 0;
  #waiters: { resolve: (frame: Connected) => void; reject: (error: Error) => void }[] = [];
  readonly #inbox = new UserInbox(
    (frame) => this.#send(frame),
    (message) => this.emit("userMessage", message),
  );

  constructor(options: RealtimeOptions) {
    super();
    const WebSocketClass = options.WebSocket ?? (globalThis as { WebSocket?: new (url: string) => object }).WebSocket;
    if (typeof WebSocketClass !== "function") {
      throw new TypeError(
        "no WebSocket in this runtime: pass `WebSocket` in the options (the `ws` package), or run Node 20 with --experimental-websocket",
      );
    }
    this.#provider = options.token;
    this.#WebSocket = WebSocketClass;
    this.#policy = { ...DEFAULT_RECONNECT, ...options.reconnect };
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  }

  /** Where the connection is. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The current connection's `connected` frame (its id, client id, expiry), while connected. */
  get connection(): Connected | undefined {
    return this.#connection;
  }

  /**
   * Starts connecting (once; later calls wait for the same connection). Resolves with the
   * next `connected` frame; rejects with {@link ConnectionLost} if the connection stops
   * for good first.
   */
  connect(): Promise<Connected> {
    if (this.#state === "closed") return Promise.reject(new ConnectionLost("the connection is closed"));
    if (this.#connection) return Promise.resolve(this.#connection);
    const connected = new Promise<Connected>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    if (this.#state === "idle") {
      this.#setState("connecting");
      void this.#run();
    }
    return connected;
  }

  /**
   * The subscription to `channel`, asked for now if connected and after every
   * (re)connection, until {@link Subscription.unsubscribe}. Every re-subscription asks for
   * the messages after the last one received, so none is missed or repeated. Subscribing
   * twice gives the same subscription (and ignores the second `options`).
   */
  subscribe(channel: string, options: SubscribeOptions = {}): Subscription {
    const existing = this.#subscriptions.get(channel);
    if (existing) return existing;
    const subscription = new Subscription(channel, () => this.#unsubscribe(subscription), options.since);
    this.#subscriptions.set(channel, subscription);
    if (this.#connection) this.#send(subscribeFrame(subscription));
    return subscription;
  }

  /** The subscriptions the connection keeps. */
  get subscriptions(): Subscription[] {
    return [...this.#subscriptions.values()];
  }

  /**
   * Publishes over the socket (the token needs `publish`; metered like a REST publish).
   * Resolves with the server's `published` answer; rejects with {@link LiveError} when
   * refused, and with {@link ConnectionLost} when not connected or when the connection
   * ends before the answer (then the message may or may not have been published: it is
   * never sent twice). Publishes that must not be lost belong on the application's
   * backend, through the REST client and its idempotency keys.
   */
  publish(channel: string, event: string, data: unknown): Promise<LivePublished> {
    return this.#request((request_id) => ({ type: "publish", channel, event, data, request_id }));
  }

  /**
   * Sends a message to a user, from this connection's client (`sender_type: "client"`,
   * `sender_id` its client id); the token needs `message`, and it is metered like
   * `realtime.user.message.send`. Resolves with `user.message.sent` (`delivered`, and
   * for a reliable message its `sequence`); rejects as {@link Realtime.publish} does.
   */
  sendUserMessage(
    targetUserId: string,
    payload: unknown,
    options: { delivery?: Delivery } = {},
  ): Promise<LiveUserMessageSent> {
    return this.#request((request_id) => ({
      type: "user.message.send",
      target_user_id: targetUserId,
      payload,
      ...(options.delivery ? { delivery: options.delivery } : {}),
      request_id,
    }));
  }

  /**
   * Sends a command to a user, from this connection's client; the token needs `message`,
   * and it is metered like `realtime.user.command.send`. Resolves with `user.command.done`
   * once one of the user's connections answers (`status: "answered"`, `response`) or the
   * server's wait ends (at most 25 s, or `timeout` seconds: `status: "pending"`, and a
   * later answer is read with `realtime.user.command.get`). Other frames go on meanwhile.
   * Rejects with {@link LiveError} (`USER_OFFLINE` when the user has no live connection)
   * and with {@link ConnectionLost} as {@link Realtime.publish} does.
   */
  sendCommand(
    targetUserId: string,
    command: string,
    data: unknown,
    options: { timeout?: number } = {},
  ): Promise<LiveCommandDone> {
    return this.#request((request_id) => ({
      type: "user.command.send",
      target_user_id: targetUserId,
      command,
      data,
      ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
      request_id,
    }));
  }

  /** Sends the frame made with a fresh `request_id`, and waits for the server's answer to it. */
  #request<T extends Answer>(frame: (request_id: string) => ClientFrame): Promise<T> {
    if (!this.#connection) return Promise.reject(new ConnectionLost("not connected"));
    const request_id = `r${++this.#requests}`;
    return new Promise((resolve, reject) => {
      this.#pending.set(request_id, { resolve: resolve as (frame: Answer) => void, reject });
      this.#send(frame(request_id));
    });
  }

  /**
   * Answers the commands sent to this connection's user with `handler` (one at a time:
   * a second call replaces the first) until the returned function is called. The first
   * response of any of the user's connections is the answer the sender gets.
   *
   * ```ts
   * realtime.onCommand(async ({ command, data }) => {
   *   if (command === "CREATE_CANVAS") return { canvas_id: await createCanvas(data) };
   *   return { error: `unknown command ${command}` };
   * });
   * ```
   */
  onCommand(handler: CommandHandler): () => void {
    return this.#inbox.onCommand(handler);
  }

  /** Closes the connection for good (`closed` with 1000). */
  close(): void {
    if (this.#state === "closed") return;
    const endSocket = this.#endSocket;
    this.#stop({ code: 1000, reason: "closed by the client" });
    endSocket?.("closed by the client");
    this.#wake?.();
  }

  /** Connections, one after another, until a close code says stop or the application closes. */
  async #run(): Promise<void> {
    let failures = 0;
    let renew = false;
    for (;;) {
      let ending: Ending;
      try {
        const token = await this.#tokenFor(renew);
        if (this.#closed()) return;
        ending = await this.#open(token);
      } catch (error) {
        if (this.#closed()) return;
        if (error instanceof TokenRefused) {
          return this.#stop({ reason: `no token: ${error.message}` });
        }
        ending = { reason: `the token provider failed: ${describe(error)}`, connected: false };
      }
      if (this.#closed()) return;
      failures = ending.connected ? 0 : failures + 1;
      const action = ending.action ?? actionFor(ending.code);
      const code = ending.code === undefined ? {} : { code: ending.code };
      if (action === "stop") return this.#stop({ ...code, reason: ending.reason });
      if (failures >= this.#policy.maxAttempts) {
        return this.#stop({ ...code, reason: `gave up after ${failures} failed attempts: ${ending.reason}` });
      }
      // Every few failures in a row the token is renewed too: its `endpoint` may have moved.
      // Not on every one, since issuing a token is billed.
      renew = action === "refresh-token" || (failures > 0 && failures % RENEW_AFTER_FAILURES === 0);
      const now = failures === 0 && (action === "refresh-token" || action === "reconnect-now");
      const retryInMs = now ? 0 : backoff(this.#policy.initialDelayMs, this.#policy.maxDelayMs, failures);
      this.#setState("reconnecting");
      this.emit("disconnected", { ...code, reason: ending.reason, action, attempt: failures + 1, retryInMs });
      await this.#wait(retryInMs);
      if (this.#closed()) return;
    }
  }

  /** The token to connect with: the current one, unless it is expiring or a fresh one is needed. */
  async #tokenFor(renew: boolean): Promise<TokenLike> {
    const current = this.#token;
    if (current && !renew && !expiresSoon(current)) return current;
    const prefetched = await this.#prefetched;
    this.#prefetched = undefined;
    const fresh =
      prefetched && prefetched.token !== current?.token && !expiresSoon(prefetched)
        ? prefetched
        : checkToken(await this.#provider());
    this.#token = fresh;
    return fresh;
  }

  /** One socket, from opening to its end. */
  #open(token: TokenLike): Promise<Ending> {
    return new Promise((resolve) => {
      let socket: Socket;
      try {
        socket = new this.#WebSocket(withToken(token.endpoint, token.token)) as Socket;
      } catch (error) {
        resolve({ reason: `cannot open ${token.endpoint}: ${describe(error)}`, connected: false });
        return;
      }
      let connected = false;
      let ended = false;
      let announced: number | undefined;
      let lastHeard = Date.now();
      let heartbeat: ReturnType<typeof setInterval> | undefined;
      const connectTimer = setTimeout(
        () => end({ reason: `no \`connected\` frame within ${this.#connectTimeoutMs} ms` }),
        this.#connectTimeoutMs,
      );

      const end = (how: Omit<Ending, "connected">) => {
        if (ended) return;
        ended = true;
        clearTimeout(connectTimer);
        clearInterval(heartbeat);
        clearTimeout(this.#prefetchTimer);
        socket.onmessage = socket.onclose = socket.onerror = null;
        try {
          // CONNECTING or OPEN: a silent server, a timeout or the application ends it.
          if (socket.readyState <= 1) socket.close(1000, how.reason.slice(0, 100));
        } catch {
          // Closing a socket that cannot be closed leaves it to the garbage collector.
        }
        this.#socket = this.#connection = this.#endSocket = undefined;
        const lost = new ConnectionLost(`the connection ended before the server answered: ${how.reason}`, how.code);
        for (const pending of this.#pending.values()) pending.reject(lost);
        this.#pending.clear();
        for (const subscription of this.#subscriptions.values()) subscription._lost();
        resolve({ ...how, connected });
      };
      this.#endSocket = (reason) => end({ code: 1000, reason });

      socket.onmessage = (event) => {
        lastHeard = Date.now();
        const frame = parseFrame(event.data);
        if (frame === undefined) return;
        if (frame.type === "connected") {
          connected = true;
          clearTimeout(connectTimer);
          const everyMs = Math.max(500, frame.heartbeat_interval_seconds * 750);
          const silenceMs = Math.max(2_000, frame.heartbeat_timeout_seconds * 1000);
          heartbeat = setInterval(() => {
            if (Date.now() - lastHeard > silenceMs) {
              end({ reason: `the server sent nothing for ${silenceMs} ms`, action: "backoff" });
            } else {
              this.#send({ type: "ping" });
            }
          }, everyMs);
          this.#socket = socket;
          this.#connected(frame);
          return;
        }
        if (frame.type === "disconnecting") announced = frame.code;
        this.#dispatch(frame);
      };
      socket.onclose = (event) => {
        const code = isCloseCode(event.code) ? event.code : (announced ?? event.code);
        end({ code, reason: event.reason || `the socket closed (${event.code})` });
      };
      // A `close` event always follows, with the code.
      socket.onerror = () => {};
    });
  }

  #connected(frame: Connected): void {
    this.#connection = frame;
    for (const subscription of this.#subscriptions.values()) this.#send(subscribeFrame(subscription));
    this.#inbox.connected(typeof frame.user_id === "string");
    this.#schedulePrefetch(frame.expires_at);
    this.#setState("connected");
    for (const waiter of this.#waiters.splice(0)) waiter.resolve(frame);
    this.emit("connected", frame);
  }

  /**
   * Asks the provider for the next token a little before this one expires (a fifth of its
   * life, at most 30 s), so that reconnecting after the server's 4002 waits on no backend.
   */
  #schedulePrefetch(expiresAt: string): void {
    const lifetime = Date.parse(expiresAt) - Date.now();
    if (!(lifetime > 0)) return;
    const lead = Math.min(30_000, lifetime / 5);
    this.#prefetchTimer = setTimeout(() => {
      this.#prefetched = this.#provider()
        .then(checkToken)
        .catch(() => undefined);
    }, lifetime - lead);
  }

  #dispatch(frame: ServerFrame): void {
    switch (frame.type) {
      case "subscribed":
      case "unsubscribed":
      case "message":
      case "presence.join":
      case "presence.leave": {
        const subscription = this.#subscriptions.get(frame.channel);
        if (!subscription) return;
        subscription._frame(frame);
        if (subscription.state === "unsubscribed") this.#subscriptions.delete(frame.channel);
        return;
      }
      case "published":
      case "user.message.sent":
      case "user.command.done": {
        const pending = frame.request_id ? this.#pending.get(frame.request_id) : undefined;
        if (pending && frame.request_id) {
          this.#pending.delete(frame.request_id);
          pending.resolve(frame);
        }
        return;
      }
      case "error": {
        const error = new LiveError(frame.code, frame.message, frame.channel ?? undefined);
        const pending = frame.request_id ? this.#pending.get(frame.request_id) : undefined;
        const subscription = frame.channel ? this.#subscriptions.get(frame.channel) : undefined;
        if (pending && frame.request_id) {
          this.#pending.delete(frame.request_id);
          pending.reject(error);
        } else if (subscription && frame.channel) {
          subscription._refused(error);
          if (subscription.state === "failed") this.#subscriptions.delete(frame.channel);
        } else {
          this.emit("error", error);
        }
        return;
      }
      case "user.message":
        return this.#inbox.message(frame);
      case "user.command":
        return this.#inbox.command(frame);
      case "pong":
        return this.#inbox.pong();
      case "connected":
      case "disconnecting":
        return;
      default: {
        // Compiles only while every frame of the contract has a case above; a frame type
        // added to the contract later is ignored at run time until it gets one.
        const unknown: never = frame;
        return unknown;
      }
    }
  }

  #unsubscribe(subscription: Subscription): void {
    if (this.#subscriptions.get(subscription.channel) !== subscription) return;
    this.#subscriptions.delete(subscription.channel);
    if (this.#connection) this.#send({ type: "unsubscribe", channel: subscription.channel });
  }

  /** Sends on the open socket; false when there is none. */
  #send(frame: ClientFrame): boolean {
    if (!this.#socket) return false;
    try {
      this.#socket.send(JSON.stringify(frame));
      return true;
    } catch {
      // The socket is closing; its `close` event ends the connection.
      return false;
    }
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  #stop(closed: Closed): void {
    if (this.#state === "closed") return;
    clearTimeout(this.#prefetchTimer);
    this.#inbox.closed();
    this.#setState("closed");
    const error = new ConnectionLost(`the connection stopped: ${closed.reason}`, closed.code);
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    this.emit("closed", closed);
  }

  /** A method, not a field read, so that TypeScript does not narrow it across awaits. */
  #closed(): boolean {
    return this.#state === "closed";
  }

  #setState(state: ConnectionState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit("state", state);
  }
}

/**
 * The frame that asks for a subscription, after every (re)connection: from the position
 * reached, once there is one, so that the server replays what was missed meanwhile.
 */
function subscribeFrame(subscription: Subscription): ClientFrame {
  const since = subscription.position;
  return since ? { type: "subscribe", channel: subscription.channel, since } : { type: "subscribe", channel: subscription.channel };
}

/** `endpoint?token=…` (or `&token=` when the endpoint has a query already). */
export function withToken(endpoint: string, token: string): string {
  const url = new URL(endpoint);
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new TypeError(`the token's endpoint ${endpoint} is not a ws:// or wss:// URL`);
  }
  url.searchParams.set("token", token);
  return url.toString();
}

function parseFrame(data: unknown): ServerFrame | undefined {
  if (typeof data !== "string") return undefined;
  try {
    const frame: unknown = JSON.parse(data);
    return typeof frame === "object" && frame !== null && typeof (frame as { type?: unknown }).type === "string"
      ? (frame as ServerFrame)
      : undefined;
  } catch {
    return undefined;
  }
}

function checkToken(token: TokenLike): TokenLike {
  if (typeof token?.token !== "string" || typeof token.endpoint !== "string") {
    throw new TypeError("the token provider must return the answer of realtime.token.issue (token, endpoint, expires_at)");
  }
  return token;
}

function expiresSoon(token: TokenLike): boolean {
  const expiresAt = Date.parse(token.expires_at);
  return Number.isFinite(expiresAt) && expiresAt - Date.now() < EXPIRY_MARGIN_MS;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
