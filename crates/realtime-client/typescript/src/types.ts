// Names for the generated types that an application uses. Everything here is derived
// from src/generated/, which scripts/generate.mjs builds from the committed contract.

import type { components as RestComponents, operations } from "./generated/openapi.js";
import type { components as LiveComponents } from "./generated/frames.js";
import type { OperationId } from "./generated/contract.js";

/** Every schema of openapi/realtime.openapi.json, by name. */
export type Schemas = RestComponents["schemas"];
/** An RFC 9457 problem, as every error answer of the REST API is. */
export type Problem = Schemas["Problem"];
/** The closed set of error codes, in REST problems and in `error` frames alike. */
export type ErrorCode = Schemas["ErrorCode"];
/** What `realtime.token.issue` answers; a token provider returns it (or its three fields). */
export type RealtimeToken = Schemas["RealtimeToken"];

/** A frame the gateway sends (openapi/realtime.asyncapi.json). */
export type ServerFrame = LiveComponents["schemas"]["ServerFrame"];
/** A frame a client sends. */
export type ClientFrame = LiveComponents["schemas"]["ClientFrame"];
/** A close code of the gateway. */
export type CloseCode = LiveComponents["schemas"]["CloseCode"];
/** One present client of a presence channel. */
export type PresenceMember = LiveComponents["schemas"]["PresenceMember"];
/** Why the server ended a subscription. */
export type UnsubscribeReason = LiveComponents["schemas"]["UnsubscribeReason"];
/** A message's place in its channel's stream: an offset within an epoch. */
export type Position = LiveComponents["schemas"]["Position"];
/** Why a subscription did not recover the messages after the position it asked for. */
export type RecoveryFailure = LiveComponents["schemas"]["RecoveryFailure"];
/** How a user message is delivered: `realtime` (fire and forget) or `reliable` (until acknowledged). */
export type Delivery = LiveComponents["schemas"]["Delivery"];
/** Who sent a user message or command: `server` or `client`. */
export type SenderType = LiveComponents["schemas"]["SenderType"];
/** The server frame whose `type` is `T`. */
export type FrameOf<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;
/** The first frame of every connection. */
export type Connected = FrameOf<"connected">;
/** An event published to a subscribed channel. */
export type Message = FrameOf<"message">;
/** The answer to a publish over the socket. */
export type LivePublished = FrameOf<"published">;
/** The answer to a user message sent over the socket. */
export type LiveUserMessageSent = FrameOf<"user.message.sent">;
/** What became of a command sent over the socket: answered, or pending when the wait ended. */
export type LiveCommandDone = FrameOf<"user.command.done">;

type Operation<Id extends OperationId> = operations[Id];

/** The JSON body an operation takes (`never` when it takes none). */
export type RequestBody<Id extends OperationId> = Operation<Id> extends {
  requestBody: { content: { "application/json": infer Body } };
}
  ? Body
  : never;

/** The JSON body of an operation's 200 answer. */
export type ResponseBody<Id extends OperationId> = Operation<Id> extends {
  responses: { 200: { content: { "application/json": infer Body } } };
}
  ? Body
  : never;

/** The path parameters of an operation (`{channel}`). */
export type PathParams<Id extends OperationId> = Operation<Id> extends { parameters: { path: infer Params } }
  ? Params
  : never;

/** The query parameters of an operation. */
export type QueryParams<Id extends OperationId> = Operation<Id> extends { parameters: { query?: infer Query } }
  ? Query
  : never;

/** What an operation needs besides the options: its body, path and query, where it has them. */
export type OperationInput<Id extends OperationId> = ([RequestBody<Id>] extends [never]
  ? { body?: never }
  : { body: RequestBody<Id> }) &
  ([PathParams<Id>] extends [never] ? { path?: never } : { path: PathParams<Id> }) &
  ([QueryParams<Id>] extends [never] ? { query?: never } : { query?: QueryParams<Id> });

export type { OperationId };
