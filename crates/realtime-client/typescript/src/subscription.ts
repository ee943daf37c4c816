// A subscription to one channel: its events, its state, its position in the channel's
// stream and, on presence channels, its members, kept from the frames the connection
// hands it.

import { Emitter } from "./emitter.js";
import type { LiveError } from "./errors.js";
import type { FrameOf, Message, Position, PresenceMember, RecoveryFailure, UnsubscribeReason } from "./types.js";

/** A change of a presence channel's members. */
export type PresenceChange =
  | {
      /** Someone's first socket joined, or their last one left. */
      action: "join" | "leave";
      /** Who. */
      member: PresenceMember;
      /** Everyone present now. */
      members: PresenceMember[];
    }
  | {
      /** The server sent the whole member list: on every (re)subscription. */
      action: "sync";
      /** Everyone present now. */
      members: PresenceMember[];
    };

/** A subscription was confirmed. */
export interface SubscribedEvent {
  /** The channel. */
  channel: string;
  /** For presence channels, who is present; empty otherwise. */
  members: PresenceMember[];
  /** True after a reconnection. */
  resubscribed: boolean;
  /** Every message after this position follows, in offset order. */
  position: Position;
  /**
   * Whether the messages after the position asked for (`since`) are replayed before the
   * live ones: `true` when nothing was missed, `false` when they cannot be (see
   * `recoveryFailure`, and the `recoveryFailed` event), absent when no position was asked
   * for (a first subscription).
   */
  recovered?: boolean;
  /** Why they are not, when `recovered` is false. */
  recoveryFailure?: RecoveryFailure;
}

/** Messages were missed on the channel and will not be replayed. */
export interface RecoveryFailed {
  /** The channel. */
  channel: string;
  /** Why: `epoch_changed`, `too_old`, `too_many` or `unknown`. */
  reason?: RecoveryFailure;
  /** The position asked for: the last message received. */
  since: Position;
  /** Where the subscription goes on from. */
  position: Position;
}

/** The events of a {@link Subscription}. */
export interface SubscriptionEvents {
  /** The server confirmed the subscription (again, after a reconnection). */
  subscribed: SubscribedEvent;
  /**
   * An event published to the channel, in offset order, each once: after a reconnection
   * the messages published meanwhile come first.
   */
  message: Message;
  /**
   * A re-subscription could not replay what was missed (`recovered: false`): reload the
   * channel's state (from `realtime.channel.history`, or the application's own backend);
   * the messages after `position` follow.
   */
  recoveryFailed: RecoveryFailed;
  /** The members of a presence channel changed. */
  presence: PresenceChange;
  /** The subscription ended: the application unsubscribed, the channel was deleted, or the server cut it. */
  unsubscribed: { channel: string; reason: UnsubscribeReason };
  /**
   * The server refused the subscription. `NOT_FOUND` and `FORBIDDEN` are final (the
   * subscription becomes `failed`); anything else is asked again on the next connection.
   */
  error: LiveError;
}

/** Where a subscription is. */
export type SubscriptionState = "subscribing" | "subscribed" | "unsubscribed" | "failed";

/**
 * A channel the connection keeps subscribed to; get one from {@link Realtime.subscribe}.
 * Its presence members are kept current from `subscribed`, `presence.join` and
 * `presence.leave`.
 */
export class Subscription extends Emitter<SubscriptionEvents> {
  #state: SubscriptionState = "subscribing";
  #members = new Map<string, PresenceMember>();
  #confirmedBefore = false;
  #lastMessage: Message | undefined;
  #position: Position | undefined;
  readonly #unsubscribe: () => void;

  /** Made by `Realtime.subscribe`, which hands it the frames of its channel. */
  constructor(
    /** The channel. */
    readonly channel: string,
    unsubscribe: () => void,
    since?: Position,
  ) {
    super();
    this.#unsubscribe = unsubscribe;
    this.#position = since;
  }

  /** Where the subscription is. */
  get state(): SubscriptionState {
    return this.#state;
  }

  /** Who is present on a presence channel, in order of arrival. */
  get members(): PresenceMember[] {
    return [...this.#members.values()];
  }

  /** The last message received. */
  get lastMessage(): Message | undefined {
    return this.#lastMessage;
  }

  /**
   * Where the subscription is in the channel's stream: the last message received, else
   * the position its `subscribed` frame gave (or the `since` it was made with). Every
   * re-subscription asks for the messages after it, so none is missed or repeated; keep
   * it to resume from it in another connection (`realtime.subscribe(channel, { since })`).
   */
  get position(): Position | undefined {
    return this.#position;
  }

  /** Stops receiving the channel, now and after reconnections. */
  unsubscribe(): void {
    if (this.#state === "unsubscribed" || this.#state === "failed") return;
    this.#unsubscribe();
    this.#end("requested");
  }

  /** @internal A frame about this channel. */
  _frame(frame: FrameOf<"subscribed" | "unsubscribed" | "message" | "presence.join" | "presence.leave">): void {
    switch (frame.type) {
      case "subscribed": {
        const since = this.#position;
        this.#state = "subscribed";
        this.#position = frame.position;
        this.#members = new Map(frame.members.map((member) => [member.client_id, member]));
        const members = this.members;
        const recovery = {
          ...(typeof frame.recovered === "boolean" ? { recovered: frame.recovered } : {}),
          ...(frame.recovery_failure ? { recoveryFailure: frame.recovery_failure } : {}),
        };
        this.emit("subscribed", {
          channel: this.channel,
          members,
          resubscribed: this.#confirmedBefore,
          position: frame.position,
          ...recovery,
        });
        this.emit("presence", { action: "sync", members });
        if (frame.recovered === false && since) {
          this.emit("recoveryFailed", { channel: this.channel, reason: recovery.recoveryFailure, since, position: frame.position });
        }
        this.#confirmedBefore = true;
        return;
      }
      case "unsubscribed":
        // The application's own unsubscribe was dealt with when it asked.
        if (frame.reason !== "requested") this.#end(frame.reason);
        return;
      case "message": {
        // The server sends each offset once; this only guards the application against a
        // repeat, should a replay and the live stream ever overlap.
        const position = this.#position;
        if (position && frame.epoch === position.epoch && frame.offset <= position.offset) return;
        this.#lastMessage = frame;
        this.#position = { epoch: frame.epoch, offset: frame.offset };
        this.emit("message", frame);
        return;
      }
      case "presence.join":
        this.#members.set(frame.member.client_id, frame.member);
        this.emit("presence", { action: "join", member: frame.member, members: this.members });
        return;
      case "presence.leave":
        this.#members.delete(frame.member.client_id);
        this.emit("presence", { action: "leave", member: frame.member, members: this.members });
        return;
      default: {
        const unknown: never = frame;
        return unknown;
      }
    }
  }

  /** @internal The server refused to subscribe. */
  _refused(error: LiveError): void {
    if (error.code === "NOT_FOUND" || error.code === "FORBIDDEN") this.#state = "failed";
    this.emit("error", error);
  }

  /** @internal The connection ended; the subscription is asked for again on the next. */
  _lost(): void {
    if (this.#state === "subscribed") this.#state = "subscribing";
  }

  #end(reason: UnsubscribeReason): void {
    this.#state = "unsubscribed";
    this.emit("unsubscribed", { channel: this.channel, reason });
  }
}
