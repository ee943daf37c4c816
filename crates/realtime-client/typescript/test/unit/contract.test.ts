// The package follows the committed contract: its generated types are not stale, every
// operation has a method, and every close code and frame type is handled.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { CLOSE_CODES, CLOSE_CODE_ACTIONS, CONTRACT_SHA256, OPERATIONS, RealtimeClient, SERVER_FRAME_TYPES } from "../../src/index.js";

const contract = new URL("../../../../../../openapi/", import.meta.url);
const read = (name: string) => readFileSync(new URL(name, contract), "utf8");

test("the generated types come from the committed contract (else run `cargo xtask clients`)", () => {
  const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
  assert.equal(CONTRACT_SHA256.openapi, sha256(read("realtime.openapi.json")), "openapi/realtime.openapi.json changed");
  assert.equal(CONTRACT_SHA256.asyncapi, sha256(read("realtime.asyncapi.json")), "openapi/realtime.asyncapi.json changed");
});

/** `realtime.channel.create` → `channelCreate`, `account.topup` → `accountTopup`. */
function methodName(operationId: string): string {
  return operationId
    .replace(/^realtime\./, "")
    .split(".")
    .map((word, index) => (index === 0 ? word : word[0]!.toUpperCase() + word.slice(1)))
    .join("");
}

test("every operation of the contract has a method, named after its id, and no method lacks an operation", () => {
  const document = JSON.parse(read("realtime.openapi.json")) as {
    paths: Record<string, Record<string, { operationId: string; deprecated?: boolean }>>;
  };
  const current = Object.values(document.paths)
    .flatMap((item) => Object.values(item))
    .filter((operation) => !operation.deprecated)
    .map((operation) => methodName(operation.operationId))
    .sort();
  const methods = Object.getOwnPropertyNames(RealtimeClient.prototype)
    .filter((name) => name !== "constructor" && name !== "call")
    .sort();
  assert.deepEqual(methods, current, "add the operation's method to src/rest.ts");
  const deprecated = Object.entries(OPERATIONS).filter(([, route]) => route.deprecated).map(([id]) => id);
  assert.ok(deprecated.every((id) => id.endsWith(".alias")), "deprecated operations are only reachable with call()");
});

test("close codes are exactly those of the contract, each with an action", () => {
  assert.deepEqual(Object.keys(CLOSE_CODE_ACTIONS).map(Number).sort(), [...CLOSE_CODES].sort());
});

test("the server frames are the event types the contract lists", () => {
  const document = JSON.parse(read("realtime.asyncapi.json")) as {
    components: { schemas: { ServerFrame: { oneOf: { properties: { type: { const: string } } }[] } } };
  };
  const types = document.components.schemas.ServerFrame.oneOf.map((variant) => variant.properties.type.const);
  assert.deepEqual([...SERVER_FRAME_TYPES], types);
});
