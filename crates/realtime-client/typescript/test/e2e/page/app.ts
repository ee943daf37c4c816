// The browser test page: a live connection whose tokens come from the page's own
// backend (the "your backend issues the token" pattern), with everything it sees shown on
// the page and exposed to the test as `window.page`.

import { Realtime, RealtimeClient, type Message, type UserMessage } from "../../../src/index.js";

interface Entry {
  atMs: number;
  kind: string;
  detail: unknown;
}

const params = new URLSearchParams(location.search);
const clientId = params.get("client") ?? "page";
const channel = params.get("channel") ?? "room";
const ttl = params.get("ttl") ?? "600";

const $ = (id: string) => document.getElementById(id)!;
const entries: Entry[] = [];
const messages: Message[] = [];
const userMessages: UserMessage[] = [];
const timings: Record<string, number> = {};
const started = performance.now();

const realtime = new Realtime({
  token: async () => {
    const response = await fetch(`/token?client=${clientId}&channel=${channel}&ttl=${ttl}`);
    if (!response.ok) throw new Error(`the backend answered ${response.status}`);
    return response.json();
  },
  reconnect: { initialDelayMs: 200, maxDelayMs: 1_000 },
});
const room = realtime.subscribe(channel);

function record(kind: string, detail: unknown = ""): void {
  entries.push({ atMs: Math.round(performance.now() - started), kind, detail });
  render();
}

realtime.on("state", (state) => record("state", state));
realtime.on("connected", (frame) => record("connected", frame.connection_id));
realtime.on("disconnected", ({ code, action, retryInMs }) => record("disconnected", { code, action, retryInMs: Math.round(retryInMs) }));
realtime.on("closed", ({ code, reason }) => record("closed", { code, reason }));
// Messages and commands to this page's user (its token's user_id, the client id here).
realtime.on("userMessage", (message) => {
  userMessages.push(message);
  record("user.message", message.payload);
  if (message.delivery === "reliable") message.ack();
});
realtime.onCommand(({ command, data }) => {
  record("user.command", command);
  return { answered_by: clientId, command, data };
});
room.on("subscribed", ({ resubscribed, recovered, members }) => {
  timings.subscribedMs ??= performance.now() - started;
  record("subscribed", { resubscribed, recovered, members: members.length });
  // The first time, ask the backend to publish: the connect-to-first-message latency.
  if (!resubscribed && params.get("hello") !== "no") void fetch(`/publish?channel=${channel}&data=hello`);
});
room.on("message", (message) => {
  timings.firstMessageMs ??= performance.now() - started;
  messages.push(message);
  record("message", message.data);
});
room.on("presence", (change) =>
  record(`presence.${change.action}`, change.action === "sync" ? change.members.length : change.member.client_id),
);
room.on("recoveryFailed", ({ reason }) => record("recovery failed", reason));
room.on("error", (error) => record("error", error.code));
realtime.on("error", (error) => record("error", error.code));

realtime.connect().then(
  () => {
    timings.connectedMs = performance.now() - started;
    render();
  },
  (error: Error) => record("connect failed", error.message),
);

/** Calls the REST API straight from the page: works only where CORS allows this origin. */
async function rest(baseUrl: string, apiKey: string): Promise<string> {
  try {
    const { types } = await new RealtimeClient({ baseUrl, apiKey, retry: { maxRetries: 0 } }).eventTypes();
    return `ok: ${types.length} event types`;
  } catch (error) {
    return `${(error as Error).name}: ${(error as Error).message}`;
  }
}

function render(): void {
  $("state").textContent = realtime.state;
  $("state").className = realtime.state;
  $("client").textContent = clientId;
  $("channel").textContent = channel;
  $("connection").textContent = realtime.connection?.connection_id ?? "-";
  $("member-count").textContent = String(room.members.length);
  $("members").replaceChildren(...room.members.map((member) => item(member.client_id)));
  $("message-count").textContent = String(messages.length);
  $("messages").replaceChildren(...messages.slice(-24).map((message) => item(JSON.stringify(message.data))));
  ($("messages") as HTMLOListElement).start = Math.max(1, messages.length - 23);
  $("timings").replaceChildren(
    ...Object.entries(timings).flatMap(([name, ms]) => [element("dt", name), element("dd", `${ms.toFixed(0)} ms`)]),
  );
  const shown = entries.filter((entry) => entry.kind !== "message").slice(-22);
  $("log").replaceChildren(
    ...shown.map((entry) => item(`+${entry.atMs} ms ${entry.kind} ${entry.detail === "" ? "" : JSON.stringify(entry.detail)}`)),
  );
}

function element(tag: string, text: string): HTMLElement {
  const node = document.createElement(tag);
  node.textContent = text;
  return node;
}

function item(text: string): HTMLElement {
  return element("li", text);
}

render();

Object.assign(window, {
  page: {
    entries,
    timings,
    rest,
    messages: () => messages.map((message) => message.data),
    userMessages: () => userMessages.map((message) => message.payload),
    members: () => room.members.map((member) => member.client_id),
    state: () => realtime.state,
    subscription: () => room.state,
  },
});
