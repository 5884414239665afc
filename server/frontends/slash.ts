/**
 * The slash protocol (PROTOCOL.md): one command per text frame in the slash
 * grammar, one JSON reply per command in command order, events as JSON.
 *
 * A frame's way: size check (417), parse (421/461/432), registration (451),
 * rate limit (263, flood 4003), the hub's command, the reply.
 */
import {
  byteLength,
  CloseCodes,
  type Code,
  codeName,
  Codes,
  type Command,
  type CommandName,
  commandName,
  type ErrorReply,
  MAX_QUEUED_FRAMES,
  parseCommand,
} from "../../protocol/mod.ts";
import { type Connection, type Hub, Ordered, Refusal, type Session } from "../hub/mod.ts";
import type { Frontend, SocketHandler } from "./frontend.ts";

/** The slash protocol, on `/` (and every path no other front-end serves). */
export const slash: Frontend = {
  path: "/",
  open: (hub, conn) => new SlashSocket(hub, conn),
};

/** A reply to send: its JSON, and how to close the socket after it, if so. */
type Answer = string | { text: string; close: { code: number; reason: string } };

/** One socket speaking the slash protocol. */
class SlashSocket implements SocketHandler {
  readonly #hub: Hub;
  readonly #s: Session;
  /**
   * Frames in arrival order; a command that awaits the store holds back the
   * rest, but those the hub pipelines go back to back (their replies in order).
   */
  readonly #frames: Ordered<string | null>;

  constructor(hub: Hub, conn: Connection) {
    this.#hub = hub;
    this.#s = hub.open(conn, { frontend: "slash" });
    this.#frames = new Ordered(
      (frame, after) => this.#run(frame, after),
      MAX_QUEUED_FRAMES,
      (frame) => frame !== null && hub.pipelines(commandName(frame)),
    );
  }

  text(frame: string): void {
    this.#push(frame);
  }

  /** A binary frame is a protocol error (421), replied in order. */
  binary(): void {
    this.#push(null);
  }

  closed(): void {
    this.#frames.clear();
    this.#hub.closed(this.#s);
  }

  #push(frame: string | null): void {
    if (this.#s.gone) return;
    if (!this.#frames.push(frame)) this.#hub.drop(this.#s, CloseCodes.FLOOD, "flood");
  }

  /**
   * Runs one frame to its reply, sent at once or, with `after`, once it has
   * settled. Returns a promise only when the reply had to wait.
   */
  #run(frame: string | null, after?: Promise<void>): Promise<void> | undefined {
    if (this.#s.gone) return;
    const answer = this.#answer(frame);
    if (after !== undefined) return after.then(() => answer).then((a) => this.#send(a));
    if (answer instanceof Promise) return answer.then((a) => this.#send(a));
    this.#send(answer);
  }

  /** The reply to one frame: at once, or once the command's store call answered. */
  #answer(frame: string | null): Answer | Promise<Answer> {
    const s = this.#s, hub = this.#hub;
    if (frame === null) {
      return this.#error(null, Codes.ERR_UNKNOWNCOMMAND, "Binary frames are not commands");
    }
    const max = hub.options.maxFrame;
    // Most frames are far below the limit in UTF-16 units times 3: no need to count bytes.
    if (frame.length > max || (frame.length * 3 > max && byteLength(frame) > max)) {
      return this.#error(
        commandName(frame),
        Codes.ERR_INPUTTOOLONG,
        `Frame is larger than ${max} bytes`,
      );
    }
    const parsed = parseCommand(frame);
    if (!parsed.ok) return this.#error(parsed.error.cmd, parsed.error.code, parsed.error.message);
    const c = parsed.command;
    hub.metrics.countIn("slash", c.cmd);
    if (s.id === null && c.cmd !== "descp") {
      return closing(
        this.#error(c.cmd, Codes.ERR_NOTREGISTERED, "Describe yourself with /descp first"),
        { code: CloseCodes.NOT_DESCRIBED, reason: "descp must come first" },
      );
    }
    const { wait, flood } = hub.limit(s, c.cmd);
    if (wait > 0) {
      const error = this.#error(
        c.cmd,
        Codes.RPL_TRYAGAIN,
        `Rate limited: retry in ${wait} ms`,
        wait,
      );
      return flood ? closing(error, { code: CloseCodes.FLOOD, reason: "flood" }) : error;
    }
    let out: unknown;
    try {
      const handler = hub.commands[c.cmd] as (s: Session, c: Command) => unknown;
      out = handler(s, c);
    } catch (e) {
      return this.#fail(c.cmd, e);
    }
    if (out instanceof Promise) {
      return out.then((data) => this.#ok(c.cmd, data), (e) => this.#fail(c.cmd, e));
    }
    return this.#ok(c.cmd, out);
  }

  /** `{"type":"ok","cmd":…,"data":…}`, as `JSON.stringify` of an `OkReply` writes it. */
  #ok(cmd: CommandName, data: unknown): string {
    return data === undefined
      ? '{"type":"ok","cmd":"' + cmd + '"}'
      : '{"type":"ok","cmd":"' + cmd + '","data":' + JSON.stringify(data) + "}";
  }

  #error(cmd: string | null, code: Code, message: string, retryAfterMs?: number): string {
    this.#hub.metrics.count(this.#hub.metrics.errors, code);
    const reply: ErrorReply = { type: "error", cmd, code, error: codeName(code), message };
    if (retryAfterMs !== undefined) reply.retryAfterMs = retryAfterMs;
    return JSON.stringify(reply);
  }

  /** A handler threw: a refusal is its error reply, anything else a 503 and a log line. */
  #fail(cmd: CommandName, e: unknown): Answer {
    if (e instanceof Refusal) {
      const error = this.#error(cmd, e.code, e.message, e.retryAfterMs);
      return e.close === undefined ? error : closing(error, e.close);
    }
    this.#hub.unexpected("command", e, { cmd, peer: this.#s.id });
    return this.#error(
      cmd,
      Codes.ERR_UNAVAILABLE,
      "The server could not complete this command; try again",
    );
  }

  #send(a: Answer): void {
    if (typeof a === "string") return this.#hub.reply(this.#s, a);
    this.#hub.reply(this.#s, a.text);
    this.#hub.drop(this.#s, a.close.code, a.close.reason);
  }
}

/** A reply after which the socket is closed. */
function closing(text: string, close: { code: number; reason: string }): Answer {
  return { text, close };
}
