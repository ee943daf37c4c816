// What the client throws. Branch on `code` (the contract's closed set), never on a message.

import type { OperationId } from "./generated/contract.js";
import type { ErrorCode, Problem } from "./types.js";

/** The base of every error this package throws. */
export class RealtimeError extends Error {
  override name = "RealtimeError";
}

/** The server answered with a problem (`application/problem+json`). */
export class ApiError extends RealtimeError {
  override name = "ApiError";
  /** The stable code to branch on. */
  readonly code: ErrorCode;

  constructor(
    /** The operation that failed. */
    readonly operation: OperationId,
    /** The HTTP status. */
    readonly status: number,
    /** The whole problem: `title`, `detail`, field `errors`, `topup_url`... */
    readonly problem: Problem,
    /** The `Retry-After` of a 429 or 503, in seconds. */
    readonly retryAfterSeconds?: number,
  ) {
    super(`${operation}: ${problem.code} (${status}): ${problem.detail ?? problem.title}`);
    this.code = problem.code;
  }
}

/**
 * The request got no answer the contract describes: the network failed, the attempt timed
 * out, or the answer was not the JSON the contract promises (then `status` says what came).
 */
export class TransportError extends RealtimeError {
  override name = "TransportError";

  constructor(
    message: string,
    /** The HTTP status, when an answer came. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The gateway refused a frame with an `error` frame (a publish, or a subscription). */
export class LiveError extends RealtimeError {
  override name = "LiveError";

  constructor(
    /** The stable code to branch on. */
    readonly code: ErrorCode,
    message: string,
    /** The channel concerned, if any. */
    readonly channel?: string,
  ) {
    super(`${code}: ${message}`);
  }
}

/**
 * The connection ended (or was not open) before the server answered a publish (the
 * message may or may not have been published), or stopped for good before `connect()`
 * could resolve.
 */
export class ConnectionLost extends RealtimeError {
  override name = "ConnectionLost";

  constructor(
    message: string,
    /** The close code, when a socket closed with one. */
    readonly code?: number,
  ) {
    super(message);
  }
}

/**
 * Thrown by a token provider to say that no token will come (the user signed out, the
 * backend refused): the connection then stops for good instead of retrying.
 */
export class TokenRefused extends RealtimeError {
  override name = "TokenRefused";
}
