/**
 * The two ways a command of the typed client fails: the server refused it
 * (an error reply, {@linkcode SignallerError}), or it never got an answer
 * ({@linkcode SignallerClientError}).
 */
import type { CommandName } from "../protocol/grammar.ts";
import type { ErrorReply } from "../protocol/messages.ts";

/** An error reply from the server, as a rejected command promise. */
export class SignallerError extends Error {
  /** The numeric code, e.g. `475`: branch on this. */
  readonly code: number;
  /** The code's name, e.g. `"ERR_BADCHANNELKEY"`. */
  readonly error: string;
  /** The command the error answers. */
  readonly cmd: CommandName;
  /** With code 263: when to retry, ms. */
  readonly retryAfterMs?: number;

  /** Wraps the error reply `reply` to command `cmd`. */
  constructor(reply: ErrorReply, cmd: CommandName) {
    super(reply.message);
    this.name = "SignallerError";
    this.code = reply.code;
    this.error = reply.error;
    this.cmd = cmd;
    if (reply.retryAfterMs !== undefined) this.retryAfterMs = reply.retryAfterMs;
  }
}

/**
 * Why a command failed on the client's side: `not-connected` (called while
 * not open; nothing was sent), `closed` (the connection dropped before the
 * reply), `timeout` (no connection in time), `invalid-reply` (the reply did
 * not match its schema).
 */
export type ClientErrorKind = "not-connected" | "closed" | "timeout" | "invalid-reply";

/** A command or connection that failed on the client's side, not by an error reply. */
export class SignallerClientError extends Error {
  /** What went wrong. */
  readonly kind: ClientErrorKind;
  /** With `closed`: the WebSocket close code. */
  readonly closeCode?: number;
  /** With `closed`: the WebSocket close reason. */
  readonly closeReason?: string;

  /** A client-side failure of kind `kind`. */
  constructor(kind: ClientErrorKind, message: string, close?: { code: number; reason: string }) {
    super(message);
    this.name = "SignallerClientError";
    this.kind = kind;
    if (close) {
      this.closeCode = close.code;
      this.closeReason = close.reason;
    }
  }
}

/** `e` as an `Error`, for whatever a rejected promise or a throw carried. */
export function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
