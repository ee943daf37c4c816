// What the live connection does after a socket ends, decided by the close code.

import type { CloseCode } from "./types.js";

/**
 * What to do after a connection ended:
 * - `stop`: give up for good (the token was refused or revoked, the server cut this client
 *   on purpose, the protocol was broken, too many connections);
 * - `refresh-token`: get a fresh token from the provider, then reconnect at once;
 * - `reconnect-now`: reconnect at once (the server restarts, or dropped a silent socket);
 * - `backoff`: reconnect after a growing, jittered delay (overload, an unreachable server).
 */
export type Action = "stop" | "refresh-token" | "reconnect-now" | "backoff";

/**
 * One action per close code of the contract. Typed as a `Record` over the generated
 * `CloseCode`, so a close code added to the contract does not compile until it is decided
 * here (and `close codes are exactly those of the contract` checks it at run time too).
 */
export const CLOSE_CODE_ACTIONS: Readonly<Record<CloseCode, Action>> = {
  4001: "stop",
  4002: "refresh-token",
  4003: "stop",
  4004: "stop",
  4005: "stop",
  4006: "stop",
  4100: "backoff",
  4101: "backoff",
  4200: "reconnect-now",
  4201: "reconnect-now",
};

/**
 * The action for a socket that ended with `code`: the protocol's codes by the table; a
 * code this client does not know (from a newer server) by the range the contract puts it
 * in: 4000-4099 do not reconnect with the same token (this client stops, as for most of
 * them), 4100-4199 back off, 4200-4299 reconnect at once; anything else (1006 when the
 * network failed, a handshake refused, no socket at all) after a backoff.
 */
export function actionFor(code: number | undefined): Action {
  if (isCloseCode(code)) return CLOSE_CODE_ACTIONS[code];
  if (code === undefined) return "backoff";
  if (code >= 4000 && code <= 4099) return "stop";
  if (code >= 4200 && code <= 4299) return "reconnect-now";
  return "backoff";
}

/** Whether `code` is one of the contract's close codes. */
export function isCloseCode(code: number | undefined): code is CloseCode {
  return code !== undefined && Object.hasOwn(CLOSE_CODE_ACTIONS, code);
}
