/**
 * Replies matched to commands first-in first-out. The server answers every
 * command with exactly one reply, in command order (PROTOCOL.md), so the
 * oldest command waiting is the one a reply answers; replies name their
 * command only as a check.
 */
import type { CommandName } from "../protocol/grammar.ts";
import { parseServerFrame, ReplyData, type ServerEvent } from "../protocol/messages.ts";
import { asError, SignallerClientError, SignallerError } from "./errors.ts";

interface Pending {
  cmd: CommandName;
  onReply?: (data: unknown) => void;
  resolve(data: unknown): void;
  reject(error: Error): void;
}

/** Options of {@linkcode ReplyQueue.send}. */
export interface SendOptions {
  /**
   * Called with the reply's data as soon as it is read, before the lines
   * after it in the same frame: bookkeeping that the events behind the reply
   * must see (a promise settles only after the whole frame was read).
   */
  onReply?: (data: unknown) => void;
}

type Schema = { safeParse(v: unknown): { success: true; data: unknown } | { success: false } };

/** Where the lines of a frame go once read. */
export interface FrameSink {
  /** An event from the server. */
  event(event: ServerEvent): void;
  /** A line that is no valid server message, or a reply no command waits for. */
  invalid(line: string, reason: string): void;
  /** False once the socket is no longer the client's: the rest of the frame is dropped. */
  current(): boolean;
}

/** The commands sent on one socket and waiting for their replies, oldest first. */
export class ReplyQueue {
  #pending: Pending[] = [];

  /**
   * Sends command `cmd` with `transmit` and resolves with its reply's
   * `data`, checked against the command's schema; rejects with a
   * {@linkcode SignallerError} on an error reply.
   */
  send(cmd: CommandName, transmit: () => void, options: SendOptions = {}): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const entry: Pending = { cmd, onReply: options.onReply, resolve, reject };
      this.#pending.push(entry);
      try {
        transmit();
      } catch (e) {
        // Never sent, so no reply will come for it.
        const i = this.#pending.lastIndexOf(entry);
        if (i >= 0) this.#pending.splice(i, 1);
        reject(asError(e));
      }
    });
  }

  /** Rejects every command still waiting with `error` (the socket is gone). */
  failAll(error: Error): void {
    const pending = this.#pending;
    this.#pending = [];
    for (const p of pending) p.reject(error);
  }

  /**
   * Reads one server frame: replies settle the commands they answer, events
   * and bad lines go to `sink`. Never throws, whatever the server sent.
   */
  read(data: unknown, sink: FrameSink): void {
    if (typeof data !== "string") {
      sink.invalid("", "binary frame");
      return;
    }
    for (const line of data.split("\n")) {
      // A listener may have closed the client in the middle of a batch: the rest is not ours.
      if (!sink.current()) break;
      if (line.length === 0) continue;
      const msg = parseServerFrame(line)[0];
      if (!msg) {
        this.#malformed(line, sink);
      } else if (msg.type === "ok") {
        this.#ok(msg.cmd, msg.data, line, sink);
      } else if (msg.type === "error") {
        const p = this.#pending.shift();
        if (p) p.reject(new SignallerError(msg, p.cmd));
        else sink.invalid(line, "reply without a command");
      } else {
        sink.event(msg);
      }
    }
  }

  #ok(cmd: string, data: unknown, line: string, sink: FrameSink): void {
    const p = this.#pending.shift();
    if (!p) {
      sink.invalid(line, "reply without a command");
      return;
    }
    if (cmd !== p.cmd) {
      p.reject(
        new SignallerClientError("invalid-reply", `Reply to /${cmd} where /${p.cmd} was due`),
      );
      return;
    }
    const r = (ReplyData[p.cmd] as Schema).safeParse(data);
    if (r.success) {
      try {
        p.onReply?.(r.data);
      } catch (e) {
        // A bug of the client's own bookkeeping: the command fails rather than the frame loop.
        p.reject(asError(e));
        return;
      }
      p.resolve(r.data);
    } else p.reject(new SignallerClientError("invalid-reply", `Malformed reply to /${p.cmd}`));
  }

  /** A line that failed validation: if it still looks like a reply, it answers the oldest command. */
  #malformed(line: string, sink: FrameSink): void {
    let type: unknown;
    try {
      type = (JSON.parse(line) as { type?: unknown } | null)?.type;
    } catch {
      // Not JSON at all.
    }
    if (type === "ok" || type === "error") {
      // Keep the queue in step: this reply, however malformed, is the oldest command's.
      const p = this.#pending.shift();
      p?.reject(new SignallerClientError("invalid-reply", `Malformed reply to /${p.cmd}`));
    }
    sink.invalid(line, "not a valid server message");
  }
}
