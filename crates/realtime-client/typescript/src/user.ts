// What the server addresses to the connection's user (its token's `user_id`) rather than
// to a channel: messages, which a reliable one needs acknowledged, and commands, which
// the application's handler answers.

import type { ClientFrame, FrameOf } from "./types.js";

type UserMessageFrame = FrameOf<"user.message">;

/**
 * A message to this connection's user. A `reliable` one is delivered again, on every
 * connection of the user, until it is acknowledged: call `ack()` once it is handled.
 * Delivery is at least once: one {@link Realtime} hands each message over once, but
 * deduplicate by `message_id` what must not be handled twice across page loads or devices.
 */
export type UserMessage =
  | (UserMessageFrame & { delivery: "realtime" })
  | (UserMessageFrame & {
      delivery: "reliable";
      /** Its place in the user's stream. */
      sequence: number;
      /** How many times it has been delivered, this time included (more than 1 is a redelivery). */
      delivery_count: number;
      /**
       * Says this message is handled. The server's acknowledgement covers every earlier
       * message too, so it goes out in `sequence` order: once every earlier message this
       * connection handed over is acknowledged as well, and once the messages redelivered
       * on connect have all arrived. An acknowledgement lost with its socket is sent again
       * when the messages come back, and they are not handed over again.
       */
      ack(): void;
    });

/** A command to this connection's user (`realtime.user.command.send`). */
export type Command = FrameOf<"user.command">;

/**
 * Answers a command: what it returns, or what its promise resolves to, is sent as the
 * response's `data` (`undefined` as `null`). A handler that throws answers nothing.
 */
export type CommandHandler = (command: Command) => unknown;

/** A reliable message handed over, whose acknowledgement the server has not confirmed. */
interface Handed {
  readonly messageId: string;
  /** The application called `ack()`. */
  handled: boolean;
}

/**
 * A user has at most this many unacknowledged messages (409 `BACKLOG_FULL` past it), so an
 * acknowledgement this far ahead of a message leaves no doubt that it reached the server.
 */
const BACKLOG_MAX = 1000;

/**
 * The user's side of one {@link Realtime}: it hands messages to the application, sends
 * their acknowledgements in sequence order, and sends the command handler's answers,
 * holding those that resolve while disconnected until the next connection.
 *
 * On connect the server delivers the user's whole backlog before it reads a frame of the
 * client, while new messages may already come in among it; the `pong` to a `ping` sent
 * right after `connected` therefore marks the end of the backlog. Until then no
 * acknowledgement is sent, since one for a new message would cover backlog messages not
 * read yet.
 *
 * @internal
 */
export class UserInbox {
  readonly #send: (frame: ClientFrame) => boolean;
  readonly #emit: (message: UserMessage) => void;
  #handler: CommandHandler | undefined;
  /** The reliable messages handed over and not known to be acknowledged, by sequence. */
  #handed = new Map<number, Handed>();
  /** The sequences delivered on this socket. */
  #delivered = new Set<number>();
  /** Whether this socket's backlog has all arrived. */
  #caughtUp = false;
  /** The sequence of the latest acknowledgement sent on this socket. */
  #ackedHere = 0;
  /** Answers that resolved while no socket was open. */
  #unsent: { frame: ClientFrame; expiresAt: number }[] = [];

  constructor(send: (frame: ClientFrame) => boolean, emit: (message: UserMessage) => void) {
    this.#send = send;
    this.#emit = emit;
  }

  /** Answers commands with `handler` until the returned function is called. */
  onCommand(handler: CommandHandler): () => void {
    this.#handler = handler;
    return () => {
      if (this.#handler === handler) this.#handler = undefined;
    };
  }

  /**
   * A new socket is open, for a user or not: answers held meanwhile go out, unless their
   * command expired, and a `ping` asks where the backlog ends.
   */
  connected(forUser: boolean): void {
    this.#delivered.clear();
    this.#ackedHere = 0;
    this.#caughtUp = !forUser;
    if (forUser) this.#send({ type: "ping" });
    const now = Date.now();
    for (const { frame, expiresAt } of this.#unsent.splice(0)) {
      if (!(expiresAt <= now)) this.#send(frame);
    }
  }

  /** A `pong`: the first one on a socket follows its whole backlog. */
  pong(): void {
    if (this.#caughtUp) return;
    this.#caughtUp = true;
    // What was handed over before and is not in the backlog is acknowledged: by this
    // client, or by another of the user's devices.
    for (const sequence of this.#handed.keys()) {
      if (!this.#delivered.has(sequence)) this.#handed.delete(sequence);
    }
    this.#acknowledge();
  }

  /** The connection stopped for good. */
  closed(): void {
    this.#unsent = [];
    this.#handed.clear();
  }

  message(frame: UserMessageFrame): void {
    if (frame.delivery === "realtime") {
      this.#emit({ ...frame, delivery: "realtime" });
      return;
    }
    const sequence = frame.sequence ?? 0;
    this.#delivered.add(sequence);
    // Handed over already: redelivered because its acknowledgement was lost or not made
    // yet, or delivered live and in the backlog at once. Its acknowledgement, if made, is
    // sent again once the backlog is in.
    if (this.#handed.get(sequence)?.messageId === frame.message_id) return;
    const handed: Handed = { messageId: frame.message_id, handled: false };
    this.#handed.set(sequence, handed);
    this.#emit({
      ...frame,
      delivery: "reliable",
      sequence,
      delivery_count: frame.delivery_count ?? 1,
      ack: () => {
        if (handed.handled) return;
        handed.handled = true;
        this.#acknowledge();
      },
    });
  }

  command(frame: Command): void {
    const handler = this.#handler;
    // Without a handler another of the user's connections may answer, or the sender's
    // wait runs out.
    if (!handler) return;
    let answer: Promise<unknown>;
    try {
      answer = Promise.resolve(handler(frame));
    } catch (error) {
      answer = Promise.reject(error);
    }
    answer.then(
      (data) => {
        const response: ClientFrame = { type: "command.response", command_id: frame.command_id, data: data ?? null };
        if (!this.#send(response)) this.#unsent.push({ frame: response, expiresAt: Date.parse(frame.expires_at) });
      },
      // Reported as an uncaught error, as a listener's is.
      (error: unknown) =>
        queueMicrotask(() => {
          throw error;
        }),
    );
  }

  /**
   * Acknowledges the longest run of handled messages from the oldest handed over, with
   * one `ack` for the last of them, unless this socket has had it already.
   */
  #acknowledge(): void {
    if (!this.#caughtUp) return;
    let through: [number, Handed] | undefined;
    for (const sequence of [...this.#handed.keys()].sort((a, b) => a - b)) {
      const handed = this.#handed.get(sequence)!;
      if (!handed.handled) break;
      through = [sequence, handed];
    }
    if (!through || through[0] <= this.#ackedHere) return;
    if (!this.#send({ type: "ack", message_id: through[1].messageId })) return;
    this.#ackedHere = through[0];
    for (const sequence of this.#handed.keys()) {
      if (sequence <= through[0] - BACKLOG_MAX) this.#handed.delete(sequence);
    }
  }
}
