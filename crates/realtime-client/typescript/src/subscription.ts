// A subscription to one channel: its events, its state and, on presence channels, its
// members, kept from the frames the connection hands it.

import { Emitter } from "./emitter.js";
import type { LiveError } from "./errors.js";
import type { FrameOf, Message, PresenceMember, UnsubscribeReason } from "./types.js";

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
  /**
   * True after a reconnection. The gateway does not replay yet what was published while
   * the connection was down; when the contract gains history, this event will also tell
   * whether the gap was recovered.
   */
  resubscribed: boolean;
}

/** The events of a {@link Subscription}. */
export interface SubscriptionEvents {
  /** The server confirmed the subscription (again, after a reconnection). */
  subscribed: SubscribedEvent;
  /** An event published to the channel, in publish order. */
  message: Message;
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
  readonly #unsubscribe: () => void;

  /** Made by `Realtime.subscribe`, which hands it the frames of its channel. */
  constructor(
    /** The channel. */
    readonly channel: string,
    unsubscribe: () => void,
  ) {
    super();
    this.#unsubscribe = unsubscribe;
  }

  /** Where the subscription is. */
  get state(): SubscriptionState {
    return this.#state;
  }

  /** Who is present on a presence channel, in order of arrival. */
  get members(): PresenceMember[] {
    return [...this.#members.values()];
  }

  /**
   * The last message received. When the contract gains history, its position is where a
   * re-subscription will resume from.
   */
  get lastMessage(): Message | undefined {
    return this.#lastMessage;
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
        this.#state = "subscribed";
        this.#members = new Map(frame.members.map((member) => [member.client_id, member]));
        const members = this.members;
        this.emit("subscribed", { channel: this.channel, members, resubscribed: this.#confirmedBefore });
        this.emit("presence", { action: "sync", members });
        this.#confirmedBefore = true;
        return;
      }
      case "unsubscribed":
        // The application's own unsubscribe was dealt with when it asked.
        if (frame.reason !== "requested") this.#end(frame.reason);
        return;
      case "message":
        this.#lastMessage = frame;
        this.emit("message", frame);
        return;
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
