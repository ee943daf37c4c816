// The live connection's test double: a WebSocket whose server side the test plays, and
// a harness that counts the sockets and tokens a connection uses.

import { Realtime, type Closed, type Disconnected, type RealtimeOptions, type TokenLike } from "../../src/index.js";

/** A WebSocket whose server side the test plays. */
export class FakeSocket {
  readyState = 0;
  sent: { type: string; [field: string]: unknown }[] = [];
  closedWith: { code?: number; reason?: string } | undefined;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;

  constructor(readonly url: string) {}

  send(data: string) {
    this.sent.push(JSON.parse(data));
  }

  close(code?: number, reason?: string) {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  /** The server accepts: `connected`. */
  accept(
    fields: { heartbeat_interval_seconds?: number; heartbeat_timeout_seconds?: number; expires_at?: string; user_id?: string } = {},
  ) {
    this.readyState = 1;
    this.deliver({
      type: "connected",
      connection_id: `conn-${this.url.slice(-2)}`,
      client_id: "me",
      expires_at: new Date(Date.now() + 3_600_000).toISOString(),
      heartbeat_interval_seconds: 25,
      heartbeat_timeout_seconds: 60,
      ...fields,
    });
  }

  deliver(frame: object) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** The server closes with `code`, after `disconnecting` as the gateway does. */
  closeWith(code: number, reason = "") {
    if (code >= 4000) this.deliver({ type: "disconnecting", code, reason });
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  subscriptions() {
    return this.sent.filter((frame) => frame.type === "subscribe").map((frame) => frame.channel);
  }

  /** The frames of `type` the client sent. */
  sentOf(type: string) {
    return this.sent.filter((frame) => frame.type === type);
  }
}

export interface Harness {
  realtime: Realtime;
  sockets: FakeSocket[];
  tokens: number;
  events: { disconnected: Disconnected[]; closed: Closed[] };
  /** The `n`th socket (1-based), once it exists. */
  socket(n: number): Promise<FakeSocket>;
}

/** Every connection a test made; `afterEach(closeOpened)` closes them whether it passed or not. */
const opened: Realtime[] = [];
export function closeOpened(): void {
  for (const realtime of opened.splice(0)) realtime.close();
}

export function harness(options: Partial<RealtimeOptions> & { lifetimeMs?: number } = {}): Harness {
  const sockets: FakeSocket[] = [];
  class Socket extends FakeSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
  }
  const state: Harness = {
    sockets,
    tokens: 0,
    events: { disconnected: [], closed: [] },
    realtime: undefined as unknown as Realtime,
    async socket(n) {
      await until(() => sockets.length >= n, `socket ${n}`);
      return sockets[n - 1]!;
    },
  };
  const token = async (): Promise<TokenLike> => {
    state.tokens += 1;
    const n = String(state.tokens).padStart(2, "0");
    return { token: `token-${n}`, endpoint: "ws://gateway.test/v1/realtime/ws", expires_at: new Date(Date.now() + (options.lifetimeMs ?? 3_600_000)).toISOString() };
  };
  state.realtime = new Realtime({ token, WebSocket: Socket, reconnect: { initialDelayMs: 1, maxDelayMs: 5 }, ...options });
  opened.push(state.realtime);
  state.realtime.on("disconnected", (event) => state.events.disconnected.push(event));
  state.realtime.on("closed", (event) => state.events.closed.push(event));
  return state;
}

export async function until(check: () => boolean, what: string, withinMs = 3_000) {
  const deadline = Date.now() + withinMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

export const settle = () => new Promise((resolve) => setTimeout(resolve, 30));
