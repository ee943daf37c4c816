// The real Pusher libraries against the reference server: pusher-js (Node build)
// subscribes, and the Node `pusher` package and the Python `pusher` package trigger.
// Run by tests/it/pusher_libraries.rs, which starts the server and passes, in the
// environment: REALTIME_URL (http://127.0.0.1:PORT), REALTIME_API_KEY (the account's
// native key), PUSHER_APP_ID, PUSHER_KEY, PUSHER_SECRET, and optionally PUSHER_TRANSPORT:
// the one transport pusher-js may use, "ws" (the default), "xhr_streaming" or
// "xhr_polling" (its HTTP fallbacks, at httpHost:httpPort under the default httpPath),
// and PUSHER_SUBSCRIPTION_COUNT=1 when the server counts subscriptions.
// Exits non-zero, saying why, on the first check that fails; prints one line per check
// that passes.
"use strict";

const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const http = require("node:http");
const { execFileSync } = require("node:child_process");
const PusherJs = require("pusher-js");
const PusherServer = require("pusher");

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run this through cargo test)`);
  return value;
};
const base = new URL(env("REALTIME_URL"));
const apiKey = env("REALTIME_API_KEY");
const transport = process.env.PUSHER_TRANSPORT || "ws";
const subscriptionCounting = process.env.PUSHER_SUBSCRIPTION_COUNT === "1";
const app = { appId: env("PUSHER_APP_ID"), key: env("PUSHER_KEY"), secret: env("PUSHER_SECRET") };
// Encrypted channels: the libraries share this key; the server never sees it.
const encryptionMasterKeyBase64 = crypto.randomBytes(32).toString("base64");

const server = new PusherServer({
  ...app,
  host: base.hostname,
  port: base.port,
  useTLS: false,
  encryptionMasterKeyBase64,
});

const TIMEOUT_MS = 5000;
const passed = (what) => console.log(`ok  ${what}`);

/** Resolves with the first emission of `event` on `emitter`, or rejects after the timeout. */
function next(emitter, event, what, timeoutMs = TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
    const handler = (data, metadata) => {
      clearTimeout(timer);
      emitter.unbind(event, handler);
      resolve({ data, metadata });
    };
    emitter.bind(event, handler);
  });
}

/** Collects every emission of `event` on `channel`. */
function collect(channel, event) {
  const seen = [];
  channel.bind(event, (data, metadata) => seen.push({ data, metadata }));
  return seen;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs the Python `pusher` package with `input` as JSON; returns what it prints, parsed. */
function python(script, input) {
  const out = execFileSync("python3", ["-c", script], { input: JSON.stringify(input), encoding: "utf8" });
  return JSON.parse(out);
}

const PYTHON_CLIENT = `
import json, sys, pusher
i = json.load(sys.stdin)
c = pusher.Pusher(app_id=i["app_id"], key=i["key"], secret=i["secret"], host=i["host"], port=int(i["port"]), ssl=False,
                  encryption_master_key_base64=i["master_key"])
`;

function pythonCall(body, extra = {}) {
  return python(PYTHON_CLIENT + body, {
    app_id: app.appId,
    key: app.key,
    secret: app.secret,
    host: base.hostname,
    port: base.port,
    master_key: encryptionMasterKeyBase64,
    ...extra,
  });
}

/**
 * The app's own backend for pusher-js's channelAuthorization endpoint: it asks the
 * server's native `realtime.auth.sign` and hands the answer back as it is.
 */
function startAuthBackend() {
  const backend = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", async () => {
      const form = new URLSearchParams(body);
      const channel = form.get("channel_name");
      const signRequest = {
        client_id: "alice",
        channels: [channel],
        vendor: "pusher",
        socket_id: form.get("socket_id"),
      };
      if (channel.startsWith("presence-")) {
        signRequest.channel_data = { user_id: "alice", user_info: { name: "Alice" } };
      }
      const signed = await fetch(new URL("/v1/realtime/auth/sign", base), {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify(signRequest),
      });
      response.writeHead(signed.status, { "content-type": "application/json" });
      response.end(await signed.text());
    });
  });
  return new Promise((resolve) => backend.listen(0, "127.0.0.1", () => resolve(backend)));
}

function client(channelAuthorization, userAuthentication) {
  return new PusherJs(app.key, {
    cluster: "local",
    wsHost: base.hostname,
    wsPort: Number(base.port),
    httpHost: base.hostname,
    httpPort: Number(base.port),
    forceTLS: false,
    enabledTransports: [transport],
    disableStats: true,
    channelAuthorization,
    userAuthentication,
  });
}

/** Resolves once `check()` holds, or rejects after the timeout. */
async function until(check, what) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function connected(pusher, what) {
  if (pusher.connection.state !== "connected") {
    await next(pusher.connection, "connected", `${what} to connect`);
  }
  assert.match(pusher.connection.socket_id, /^\d+\.\d+$/);
}

async function subscribed(pusher, name) {
  const channel = pusher.subscribe(name);
  const failed = next(channel, "pusher:subscription_error", `${name}'s subscription error`).then(({ data }) => {
    throw new Error(`subscribing to ${name} failed: ${JSON.stringify(data)}`);
  });
  await Promise.race([next(channel, "pusher:subscription_succeeded", `${name} to be subscribed`), failed]);
  return channel;
}

async function main() {
  const backend = await startAuthBackend();
  const endpoint = `http://127.0.0.1:${backend.address().port}/pusher/auth`;

  // Alice authorizes through her backend and the native auth.sign; Bob through the Node
  // library's authorizeChannel, as a Pusher app's backend would.
  const alice = client({ endpoint, transport: "ajax" });
  const bob = client({
    customHandler: ({ socketId, channelName }, callback) => {
      const presence = channelName.startsWith("presence-") ? { user_id: "bob", user_info: { name: "Bob" } } : undefined;
      callback(null, server.authorizeChannel(socketId, channelName, presence));
    },
  });
  await connected(alice, "alice");
  await connected(bob, "bob");
  assert.equal(alice.connection.connection.transport.name, transport);
  passed(`pusher-js connects over ${transport} and gets an N.N socket id`);

  const alicePublic = await subscribed(alice, "my-channel");
  const alicePrivate = await subscribed(alice, "private-room");
  const bobPrivate = await subscribed(bob, "private-room");
  passed("public and private subscriptions (auth.sign as is, and the Node library's signature)");

  const alicePresence = await subscribed(alice, "presence-room");
  const bobJoined = next(alicePresence, "pusher:member_added", "bob to join alice's presence channel");
  const bobPresence = await subscribed(bob, "presence-room");
  assert.equal(bobPresence.members.count, 2);
  assert.deepEqual(bobPresence.members.get("alice").info, { name: "Alice" });
  assert.equal(bobPresence.members.me.id, "bob");
  const added = await bobJoined;
  assert.equal(added.data.id, "bob");
  assert.deepEqual(added.data.info, { name: "Bob" });
  passed("presence: members with their user_info, member_added");

  // One trigger from each server library to two channels.
  const onPublic = collect(alicePublic, "lib-event");
  const onPrivate = collect(alicePrivate, "lib-event");
  const onBobPrivate = collect(bobPrivate, "lib-event");
  pythonCall(`c.trigger(["my-channel", "private-room"], "lib-event", {"from": "python"})\nprint("{}")`);
  const triggered = await server.trigger(["my-channel", "private-room"], "lib-event", { from: "node" });
  assert.equal(triggered.status, 200);
  await sleep(300);
  for (const seen of [onPublic, onPrivate, onBobPrivate]) {
    assert.deepEqual(seen.map(({ data }) => data.from), ["python", "node"]);
  }
  passed("triggers from the Python and the Node libraries reach every subscriber, in order");

  // Socket exclusion, from both libraries.
  const aliceExcluded = collect(alicePrivate, "excluded");
  const bobExcluded = collect(bobPrivate, "excluded");
  await server.trigger("private-room", "excluded", { from: "node" }, { socket_id: alice.connection.socket_id });
  pythonCall(`c.trigger("private-room", "excluded", {"from": "python"}, socket_id=i["socket_id"])\nprint("{}")`, {
    socket_id: bob.connection.socket_id,
  });
  await sleep(300);
  assert.deepEqual(aliceExcluded.map(({ data }) => data.from), ["python"]);
  assert.deepEqual(bobExcluded.map(({ data }) => data.from), ["node"]);
  passed("socket_id exclusion skips exactly that socket (both libraries)");

  // Batch trigger, from the Node library.
  const batched = collect(bobPrivate, "batched");
  await server.triggerBatch([
    { channel: "private-room", name: "batched", data: { n: 1 } },
    { channel: "private-room", name: "batched", data: { n: 2 } },
  ]);
  await sleep(300);
  assert.deepEqual(batched.map(({ data }) => data.n), [1, 2]);
  passed("batch trigger");

  // Client events: the others get them, with the sender's user id on presence; the sender does not.
  const aliceHello = collect(alicePresence, "client-hello");
  const bobHello = next(bobPresence, "client-hello", "bob to get alice's client event");
  assert.equal(alicePresence.trigger("client-hello", { text: "hi" }), true);
  const hello = await bobHello;
  assert.deepEqual(hello.data, { text: "hi" });
  assert.equal(hello.metadata.user_id, "alice");
  await sleep(300);
  assert.equal(aliceHello.length, 0, "a client event is not echoed to its sender");
  passed("client events reach the others with user_id, not the sender");

  // A publish through the native REST API reaches pusher-js subscribers.
  const native = next(alicePublic, "native-event", "the native publish");
  const published = await fetch(new URL("/v1/realtime/publish", base), {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ channel: "my-channel", event: "native-event", data: { from: "rest" } }),
  });
  assert.equal(published.status, 200);
  assert.deepEqual((await native).data, { from: "rest" });
  passed("a native REST publish reaches pusher-js");

  // Encrypted channels: the libraries encrypt and decrypt; the server relays ciphertext.
  const secretive = client({
    customHandler: ({ socketId, channelName }, callback) => callback(null, server.authorizeChannel(socketId, channelName)),
  });
  await connected(secretive, "the encrypted-channel client");
  const encrypted = await subscribed(secretive, "private-encrypted-vault");
  const secrets = collect(encrypted, "secret");
  await server.trigger("private-encrypted-vault", "secret", { from: "node" });
  pythonCall(`c.trigger("private-encrypted-vault", "secret", {"from": "python"})\nprint("{}")`);
  await sleep(300);
  assert.deepEqual(secrets.map(({ data }) => data.from), ["node", "python"]);
  const history = await fetch(new URL("/v1/realtime/channel/history/private-encrypted-vault", base), {
    headers: { authorization: `Bearer ${apiKey}` },
  });
  const stored = JSON.stringify(await history.json());
  assert.ok(stored.includes("ciphertext") && !stored.includes("python"), "the server kept only ciphertext");
  // (Both libraries refuse an encrypted trigger to several channels before sending it;
  // the server's own 400 for it is tested in tests/it/pusher_http.rs.)
  passed("encrypted channels: relayed as ciphertext, decrypted by pusher-js");

  // Send to user: pusher-js signs in (the Node library's authenticateUser), subscribes to
  // #server-to-user-carol, and hands what both libraries send to the user to user.bind.
  const carol = client(undefined, {
    customHandler: ({ socketId }, callback) => callback(null, server.authenticateUser(socketId, { id: "carol" })),
  });
  await connected(carol, "carol");
  const greetings = [];
  carol.user.bind("greeting", (data) => greetings.push(data.from));
  const aliceGreetings = [];
  alice.bind_global((event, data) => event === "greeting" && aliceGreetings.push(data));
  carol.signin();
  await until(() => carol.user.serverToUserChannel?.subscribed, "carol's user channel to be subscribed");
  const sent = await server.sendToUser("carol", "greeting", { from: "node" });
  assert.equal(sent.status, 200);
  pythonCall(`c.send_to_user("carol", "greeting", {"from": "python"})\nprint("{}")`);
  await until(() => greetings.length === 2, "both greetings to reach carol");
  assert.deepEqual(greetings, ["node", "python"]);
  assert.equal(aliceGreetings.length, 0, "only carol's sockets get what is sent to carol");
  passed("send to user: signin, #server-to-user-, sendToUser (Node) and send_to_user (Python)");

  // The watchlist: dave signs in watching erin (the Node library's authenticateUser signs
  // the watchlist into user_data) and hears on pusher.user.watchlist that erin is
  // offline, then online when she signs in, then offline when her socket goes.
  const signsIn = (user) =>
    client(undefined, {
      customHandler: ({ socketId }, callback) => callback(null, server.authenticateUser(socketId, user)),
    });
  const dave = signsIn({ id: "dave", watchlist: ["erin"] });
  await connected(dave, "dave");
  const watched = [];
  for (const name of ["online", "offline"]) {
    dave.user.watchlist.bind(name, (event) => watched.push(`${event.name}:${event.user_ids.join(",")}`));
  }
  dave.signin();
  await until(() => watched.length === 1, "dave's first watchlist event");
  assert.deepEqual(watched, ["offline:erin"]);
  const erin = signsIn({ id: "erin" });
  await connected(erin, "erin");
  erin.signin();
  await until(() => watched.length === 2, "erin to come online for dave");
  const erinLeaving = transport === "ws" ? TIMEOUT_MS : 3 * TIMEOUT_MS;
  erin.disconnect();
  const erinGone = Date.now() + erinLeaving;
  while (watched.length < 3 && Date.now() < erinGone) await sleep(20);
  assert.deepEqual(watched, ["offline:erin", "online:erin", "offline:erin"]);
  dave.disconnect();
  passed("watchlist: pusher.user.watchlist hears offline, online and offline again");

  // Cache channels: a new subscriber gets the channel's last event, or pusher:cache_miss.
  await server.trigger("cache-weather", "forecast", { sky: "rain" });
  pythonCall(`c.trigger("cache-weather", "forecast", {"sky": "sun"})\nprint("{}")`);
  const weather = secretive.subscribe("cache-weather");
  const forecast = next(weather, "forecast", "the cached forecast");
  const empty = secretive.subscribe("cache-empty");
  const missed = next(empty, "pusher:cache_miss", "the cache miss of an empty cache channel");
  assert.deepEqual((await forecast).data, { sky: "sun" });
  await missed;
  passed("cache channels: the last event to a new subscriber, or pusher:cache_miss");

  // Subscription counting: pusher-js emits pusher:subscription_count and keeps the count.
  if (subscriptionCounting) {
    const counted = await subscribed(carol, "counted-room");
    const another = client(undefined);
    await connected(another, "the second counted client");
    const counts = [];
    counted.bind("pusher:subscription_count", (data) => counts.push(data.subscription_count));
    await subscribed(another, "counted-room");
    await until(() => counted.subscriptionCount === 2, "pusher-js to hold a subscription count of 2");
    assert.equal(counts.at(-1), 2);
    another.disconnect();
    await until(() => counted.subscriptionCount === 1, "the count to drop to 1");
    passed("subscription counting: pusher:subscription_count and channel.subscriptionCount");
  }

  // The HTTP API's queries, signed by both libraries.
  const users = pythonCall(`print(json.dumps(c.users_info("presence-room")))`);
  assert.deepEqual(users.users.map(({ id }) => id).sort(), ["alice", "bob"]);
  const listed = pythonCall(`print(json.dumps(c.channels_info(prefix_filter="presence-", attributes=["user_count"])))`);
  assert.deepEqual(listed, { channels: { "presence-room": { user_count: 2 } } });
  const info = await server.get({ path: "/channels/private-room", params: { info: "subscription_count" } });
  assert.deepEqual(await info.json(), { occupied: true, subscription_count: 2 });
  passed("channel list with filter_by_prefix and user_count, channel info, presence users");

  // A member's last socket leaving. Over HTTP pusher-js just stops reading, and the
  // server notices when the session expires, 5 s after its last read.
  const leaving = transport === "ws" ? TIMEOUT_MS : 3 * TIMEOUT_MS;
  const bobLeft = next(alicePresence, "pusher:member_removed", "bob to leave", leaving);
  const disconnected = Date.now();
  bob.disconnect();
  assert.equal((await bobLeft).data.id, "bob");
  passed(`member_removed when a user's last socket leaves (${Date.now() - disconnected} ms)`);

  for (const pusher of [alice, secretive, carol]) pusher.disconnect();
  backend.close();
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`FAILED: ${error.stack || error}`);
    process.exit(1);
  },
);
