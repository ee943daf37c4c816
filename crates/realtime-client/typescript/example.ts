// A fetch-based client of three operations, typed only by the types that
// openapi-typescript generates from openapi/realtime.openapi.json.
//
// `cargo xtask clients` generates those types into
// node_modules/@realtime/contract/index.d.ts and type-checks this file with
// `tsc --noEmit --strict`. When the contract changes in a way that breaks generated
// clients (a renamed field, a changed type, a removed path), this file stops compiling.
// It is never run.

import type { components, paths } from "@realtime/contract";

type Problem = components["schemas"]["Problem"];

/** The paths that have an operation for `Method`. */
type PathsWith<Method extends "get" | "post" | "delete"> = {
  [P in keyof paths]: paths[P] extends { [M in Method]: object } ? P : never;
}[keyof paths];

/** The JSON body of an operation's 200 answer. */
type Ok<Operation> = Operation extends {
  responses: { 200: { content: { "application/json": infer Body } } };
}
  ? Body
  : never;

/** The JSON request body of an operation. */
type RequestBody<Operation> = Operation extends {
  requestBody: { content: { "application/json": infer Body } };
}
  ? Body
  : never;

/** The path parameters of an operation. */
type PathParams<Operation> = Operation extends { parameters: { path: infer Params } } ? Params : never;

/** A problem+json answer, with the stable `code` to branch on. */
export class RealtimeError extends Error {
  constructor(readonly problem: Problem) {
    super(`${problem.title} (${problem.code}): ${problem.detail ?? ""}`);
  }
}

export class RealtimeClient {
  constructor(
    private readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  /** POSTs a typed body with an idempotency key; returns the typed 200 body. */
  async post<P extends PathsWith<"post">>(
    path: P,
    body: RequestBody<paths[P]["post"]>,
    idempotencyKey: string = crypto.randomUUID(),
  ): Promise<Ok<paths[P]["post"]>> {
    return this.send("POST", path, body, idempotencyKey);
  }

  /** GETs a path whose `{name}` parameters are filled in and percent-encoded. */
  async get<P extends PathsWith<"get">>(
    path: P,
    params: PathParams<paths[P]["get"]>,
  ): Promise<Ok<paths[P]["get"]>> {
    let url: string = path;
    for (const [name, value] of Object.entries(params ?? {})) {
      url = url.replace(`{${name}}`, encodeURIComponent(String(value)));
    }
    return this.send("GET", url, undefined, undefined);
  }

  private async send<T>(method: string, path: string, body: unknown, idempotencyKey: string | undefined): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.apiKey}`, accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (idempotencyKey !== undefined) headers["idempotency-key"] = idempotencyKey;
    const response = await fetch(this.baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw new RealtimeError((await response.json()) as Problem);
    return (await response.json()) as T;
  }
}

/** Three operations: realtime.channel.create, realtime.publish and realtime.channel.get. */
export async function demo(baseUrl: string, apiKey: string): Promise<string> {
  const client = new RealtimeClient(baseUrl, apiKey);

  const created = await client.post("/v1/realtime/channel/create", { name: "room-42", type: "presence" });
  const isNew: boolean = created.created;

  const published = await client.post("/v1/realtime/publish", {
    channel: created.name,
    event: "message",
    data: { text: "hi" },
  });
  const messageId: string = published.message_id;
  const delivered: number = published.delivered;

  const channel = await client.get("/v1/realtime/channel/get/{channel}", { channel: "room-42" });
  const kind: "public" | "private" | "presence" = channel.type;
  const members: number | undefined = channel.member_count ?? undefined;

  try {
    await client.post("/v1/realtime/publish", { channel: "never-created", event: "message", data: null });
  } catch (error) {
    if (error instanceof RealtimeError && error.problem.code === "NOT_FOUND") {
      // Branch on the closed set of codes, never on the title or the detail.
    }
  }

  return `${isNew} ${messageId} ${delivered} ${kind} ${members}`;
}
