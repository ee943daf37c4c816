import assert from "node:assert/strict";
import { test } from "node:test";

import { actionFor, backoff } from "../../src/index.js";

test("gives up on the token and policy codes 4001 and 4003-4006, and refreshes the token on 4002", () => {
  for (const code of [4001, 4003, 4004, 4005, 4006]) assert.equal(actionFor(code), "stop", `${code}`);
  assert.equal(actionFor(4002), "refresh-token");
});

test("backs off on overload (4100, 4101) and reconnects at once after a restart or a heartbeat timeout", () => {
  assert.equal(actionFor(4100), "backoff");
  assert.equal(actionFor(4101), "backoff");
  assert.equal(actionFor(4200), "reconnect-now");
  assert.equal(actionFor(4201), "reconnect-now");
});

test("backs off on anything outside the protocol: a dropped network, a refused handshake, no socket", () => {
  for (const code of [1000, 1001, 1006, 1011, 4000, 4999, undefined]) assert.equal(actionFor(code), "backoff", `${code}`);
});

test("the backoff doubles, stays within half and all of its ceiling, and is capped", () => {
  for (let attempt = 0; attempt < 10; attempt++) {
    const ceiling = Math.min(1000, 100 * 2 ** attempt);
    assert.equal(backoff(100, 1000, attempt, () => 0), ceiling / 2);
    assert.equal(backoff(100, 1000, attempt, () => 1), ceiling);
  }
});
