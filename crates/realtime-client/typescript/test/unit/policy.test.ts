import assert from "node:assert/strict";
import { test } from "node:test";

import { CLOSE_CODES, CLOSE_CODE_ACTIONS, actionFor, backoff } from "../../src/index.js";

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

test("every close code of the contract acts as its range says: 40xx not with the same token, 41xx after a backoff, 42xx at once", () => {
  for (const code of CLOSE_CODES) {
    const action = CLOSE_CODE_ACTIONS[code];
    if (code < 4100) assert.ok(action === "stop" || action === "refresh-token", `${code}: ${action}`);
    else if (code < 4200) assert.equal(action, "backoff", `${code}`);
    else assert.equal(action, "reconnect-now", `${code}`);
  }
});

test("a close code of a newer server is handled by its range: 40xx stops, 41xx backs off, 42xx reconnects at once", () => {
  for (const code of [4000, 4007, 4099]) assert.equal(actionFor(code), "stop", `${code}`);
  for (const code of [4102, 4199]) assert.equal(actionFor(code), "backoff", `${code}`);
  for (const code of [4202, 4299]) assert.equal(actionFor(code), "reconnect-now", `${code}`);
});

test("backs off on anything outside the protocol: a dropped network, a refused handshake, no socket", () => {
  for (const code of [1000, 1001, 1006, 1011, 3000, 4300, 4999, undefined]) assert.equal(actionFor(code), "backoff", `${code}`);
});

test("the backoff doubles, stays within half and all of its ceiling, and is capped", () => {
  for (let attempt = 0; attempt < 10; attempt++) {
    const ceiling = Math.min(1000, 100 * 2 ** attempt);
    assert.equal(backoff(100, 1000, attempt, () => 0), ceiling / 2);
    assert.equal(backoff(100, 1000, attempt, () => 1), ceiling);
  }
});
