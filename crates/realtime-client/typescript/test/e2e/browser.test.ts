// The package in a real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; nothing is downloaded) against the reference server. The test page
// gets its tokens from its own backend, served by this test on another origin than the
// realtime server, so CORS and the gateway's Origin check are exercised as in production.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";
import { type Browser, type Page, chromium } from "playwright-core";

import { Realtime, RealtimeClient } from "../../src/index.js";
import { Server } from "./server.js";

/** The flags this machine's Chromium needs: root, no GPU, and no calls home on a closed network. */
const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const SCREENSHOT = process.env.SCREENSHOT ?? "/tmp/realtime-client-browser.png";

/** What the page's script exposes as `window.page`. */
interface PageApi {
  entries: { atMs: number; kind: string; detail: unknown }[];
  timings: Record<string, number>;
  rest(baseUrl: string, apiKey: string): Promise<string>;
  messages(): unknown[];
  userMessages(): unknown[];
  members(): string[];
  state(): string;
  subscription(): string;
}
declare const page: PageApi;

let server: Server;
let rest: RealtimeClient;
let browser: Browser;
let app: Backend;
let elsewhere: Backend;
let tab: Page;
const opened: Realtime[] = [];

/**
 * The application's backend: it serves the test page and issues tokens with its API key
 * (the page never sees the key). Each one is an origin of its own.
 */
interface Backend {
  origin: string;
  close(): Promise<void>;
}

async function backend(script: string): Promise<Backend> {
  const html = readFileSync(fileURLToPath(new URL("../../../test/e2e/page/index.html", import.meta.url)));
  const http: HttpServer = createServer(async (request, response) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    const query = (name: string) => url.searchParams.get(name) ?? "";
    try {
      if (url.pathname === "/token") {
        const token = await rest.tokenIssue({
          client_id: query("client"),
          channels: [query("channel")],
          capabilities: ["subscribe", "presence"],
          ttl_seconds: Number(query("ttl")),
        });
        response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(token));
      } else if (url.pathname === "/publish") {
        await rest.publish({ channel: query("channel"), event: "test", data: query("data") });
        response.writeHead(204).end();
      } else if (url.pathname === "/app.js") {
        response.writeHead(200, { "content-type": "text/javascript" }).end(script);
      } else {
        response.writeHead(200, { "content-type": "text/html" }).end(html);
      }
    } catch (error) {
      response.writeHead(502).end(String(error));
    }
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const { port } = http.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => http.close(() => resolve())),
  };
}

/** Polls the page until `check` (run in the page) holds. */
async function until(on: Page, check: () => boolean, what: string, timeout = 10_000): Promise<void> {
  try {
    await on.waitForFunction(check, undefined, { timeout, polling: 50 });
  } catch {
    const state = await on.evaluate(() => page.entries.slice(-12));
    throw new Error(`not within ${timeout} ms: ${what}; the page's last entries: ${JSON.stringify(state)}`);
  }
}

/** Opens the test page; `hello` has its backend publish once it is first subscribed. */
async function open(origin: string, client: string, ttl: number, hello = false): Promise<Page> {
  const opened = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  opened.on("pageerror", (error) => console.error(`page error: ${error.message}`));
  await opened.goto(`${origin}/?client=${client}&channel=room&ttl=${ttl}&hello=${hello ? "yes" : "no"}`);
  return opened;
}

before(async () => {
  // The page's script and the package, bundled and minified as an app would ship them.
  const bundled = await build({
    entryPoints: [fileURLToPath(new URL("./page/app.js", import.meta.url))],
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2022",
    write: false,
  });
  const script = bundled.outputFiles[0]!.text;
  app = await backend(script);
  elsewhere = await backend(script);
  server = await Server.start({
    GATEWAY__HEARTBEAT_INTERVAL_SECONDS: "1",
    GATEWAY__HEARTBEAT_TIMEOUT_SECONDS: "3",
    CORS__ALLOWED_ORIGINS: `["${app.origin}"]`,
    GATEWAY__ALLOWED_ORIGINS: `["${app.origin}"]`,
  });
  rest = new RealtimeClient({ baseUrl: server.url, apiKey: server.apiKey });
  await rest.channelCreate({ name: "room", type: "presence" });
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_FLAGS });
});

after(async () => {
  for (const realtime of opened) realtime.close();
  await browser?.close();
  await app?.close();
  await elsewhere?.close();
  await server?.dispose();
});

test("a page connects with a token from its backend, subscribes and receives publishes in order", async (t) => {
  tab = await open(app.origin, "page", 600, true);
  await until(tab, () => page.timings.firstMessageMs !== undefined, "the first message");
  const timings = await tab.evaluate(() => page.timings);
  t.diagnostic(
    `browser latency from connect(): connected ${timings.connectedMs!.toFixed(0)} ms, subscribed ${timings.subscribedMs!.toFixed(0)} ms, first message ${timings.firstMessageMs!.toFixed(0)} ms`,
  );
  for (let n = 1; n <= 20; n++) await rest.publish({ channel: "room", event: "count", data: n });
  await until(tab, () => page.messages().length === 21, "21 messages");
  assert.deepEqual(await tab.evaluate(() => page.messages()), ["hello", ...Array.from({ length: 20 }, (_, n) => n + 1)]);
});

test("the page sees presence join and leave", async () => {
  const visitor = new Realtime({
    token: () => rest.tokenIssue({ client_id: "visitor", channels: ["room"], capabilities: ["subscribe", "presence"] }),
  });
  opened.push(visitor);
  visitor.subscribe("room");
  await visitor.connect();
  await until(tab, () => page.members().includes("visitor"), "the visitor's join");
  assert.deepEqual(await tab.evaluate(() => page.members()), ["page", "visitor"]);
  visitor.close();
  await until(tab, () => !page.members().includes("visitor"), "the visitor's leave");
  const changes = await tab.evaluate(() => page.entries.filter((entry) => entry.kind.startsWith("presence.")).map((entry) => entry.kind));
  assert.deepEqual(changes.slice(-2), ["presence.join", "presence.leave"]);
});

test("a page whose token expires gets a fresh one from its backend and keeps its subscription", async () => {
  const short = await open(app.origin, "refresher", 3);
  await until(short, () => page.subscription() === "subscribed", "subscribed");
  await until(short, () => page.entries.some((entry) => entry.kind === "disconnected" && (entry.detail as { code?: number }).code === 4002), "the server's 4002", 8_000);
  await until(short, () => page.state() === "connected" && page.subscription() === "subscribed", "connected again");
  await rest.publish({ channel: "room", event: "test", data: "after-refresh" });
  await until(short, () => page.messages().includes("after-refresh"), "a message after the refresh");
  assert.equal(await short.evaluate(() => page.entries.some((entry) => entry.kind === "closed")), false);
  await short.close();
});

test("the page survives a server restart on the same store, resumes its subscription and misses nothing", async () => {
  await server.restart();
  // Published before the page is back, most likely: the resubscription replays it.
  await rest.publish({ channel: "room", event: "test", data: "during-restart" });
  await until(tab, () => page.entries.some((entry) => entry.kind === "disconnected" && (entry.detail as { code?: number }).code === 4200), "the server's 4200");
  await until(tab, () => page.entries.some((entry) => entry.kind === "subscribed" && (entry.detail as { resubscribed: boolean }).resubscribed), "subscribed again", 15_000);
  const resubscribed = await tab.evaluate(() => page.entries.filter((entry) => entry.kind === "subscribed").at(-1)?.detail);
  assert.equal((resubscribed as { recovered?: boolean }).recovered, true);
  await rest.publish({ channel: "room", event: "test", data: "after-restart" });
  await until(tab, () => page.messages().includes("after-restart"), "a message after the restart");
  const messages = await tab.evaluate(() => page.messages());
  assert.deepEqual(messages.slice(-2), ["during-restart", "after-restart"]);
  assert.equal(new Set(messages).size, messages.length, "no message twice");
});

test("the page gets the messages sent to its user, acknowledges the reliable ones, and answers commands", async () => {
  const sent = await rest.userMessageSend({ target_user_id: "page", delivery: "reliable", payload: "for the page" });
  assert.equal(sent.delivered, 1);
  await until(tab, () => page.userMessages().includes("for the page"), "the user message");
  const answered = await rest.userCommandSend({ target_user_id: "page", type: "PING", data: { n: 1 }, timeout: 10 });
  assert.equal(answered.status, "answered");
  assert.deepEqual(answered.response, { answered_by: "page", command: "PING", data: { n: 1 } });
  const errors = await tab.evaluate(() => page.entries.filter((entry) => entry.kind === "error"));
  assert.deepEqual(errors, [], "the ack was taken");
});

test("a page on an allowed origin may call the REST API; on another, CORS and the Origin check refuse it", async () => {
  assert.match(await tab.evaluate(([url, key]) => page.rest(url!, key!), [server.url, server.apiKey]), /^ok: \d+ event types$/);
  const stranger = await open(elsewhere.origin, "stranger", 600);
  assert.match(await stranger.evaluate(([url, key]) => page.rest(url!, key!), [server.url, server.apiKey]), /^TransportError/);
  await until(stranger, () => page.entries.filter((entry) => entry.kind === "disconnected").length >= 2, "refused handshakes");
  const kinds = await stranger.evaluate(() => page.entries.map((entry) => entry.kind));
  assert.equal(kinds.includes("connected"), false, "the gateway refused this origin's sockets");
  await stranger.close();
});

test("the page reports a close code it must not retry (4004) and stays closed", async () => {
  await rest.userDisconnect({ client_id: "page" });
  await until(tab, () => page.state() === "closed", "closed");
  const closed = await tab.evaluate(() => page.entries.find((entry) => entry.kind === "closed")?.detail);
  assert.equal((closed as { code: number }).code, 4004);
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  assert.equal(await tab.evaluate(() => page.state()), "closed");
  const last = await tab.evaluate(() => page.entries.at(-1)?.kind);
  assert.equal(last, "closed", "nothing happened after it");
  await tab.screenshot({ path: SCREENSHOT });
});

test("the README's example runs: its backend issues tokens and its page shows what is published", async () => {
  const example = await Server.start();
  const child: ChildProcess = spawn(process.execPath, ["examples/backend.mjs"], {
    cwd: fileURLToPath(new URL("../../../", import.meta.url)),
    env: { ...process.env, REALTIME_URL: example.url, REALTIME_API_KEY: example.apiKey, PORT: "0" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`examples/backend.mjs exited with ${code}`)));
      createInterface({ input: child.stdout! }).on("line", (line) => {
        const found = /open (\S+)/.exec(line)?.[1];
        if (found) resolve(found);
      });
    });
    const tab = await browser.newPage();
    await tab.goto(url);
    await tab.waitForFunction(() => document.querySelector("#members")?.textContent?.startsWith("guest-"));
    const publisher = new RealtimeClient({ baseUrl: example.url, apiKey: example.apiKey });
    await publisher.publish({ channel: "room-42", event: "chat", data: { text: "hi" } });
    await tab.waitForFunction(() => document.querySelector("#messages")?.textContent === 'chat: {"text":"hi"}');
    await tab.close();
  } finally {
    child.kill();
    await example.dispose();
  }
});
