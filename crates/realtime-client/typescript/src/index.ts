// @realtime/client: a typed REST client and a live connection for the realtime contract,
// in browsers and Node 20+, with no dependencies beyond the platform's fetch and WebSocket.

export { RealtimeClient, isRetryable, isRetryableStatus, newIdempotencyKey } from "./rest.js";
export type { CallOptions, ClientOptions, Reply, RetryPolicy } from "./rest.js";
export { Realtime, withToken } from "./live.js";
export type {
  Closed,
  ConnectionState,
  Disconnected,
  RealtimeEvents,
  RealtimeOptions,
  ReconnectPolicy,
  SubscribeOptions,
  TokenLike,
  TokenProvider,
} from "./live.js";
export { Subscription } from "./subscription.js";
export type {
  PresenceChange,
  RecoveryFailed,
  SubscribedEvent,
  SubscriptionEvents,
  SubscriptionState,
} from "./subscription.js";
export type { Command, CommandHandler, UserMessage } from "./user.js";
export { ApiError, ConnectionLost, LiveError, RealtimeError, TokenRefused, TransportError } from "./errors.js";
export { CLOSE_CODE_ACTIONS, actionFor } from "./policy.js";
export type { Action } from "./policy.js";
export { backoff } from "./backoff.js";
export { CLOSE_CODES, CONTRACT_SHA256, OPERATIONS, SERVER_FRAME_TYPES } from "./generated/contract.js";
export type * from "./types.js";
