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

/** One socket speaking the slash protocol. */
class SlashSocket implements SocketHandler {
  readonly #hub: Hub;
  readonly #s: Session;
  /** Frames in arrival order; a command that awaits the store holds back the rest. */
  readonly #frames: Ordered<string | null>;
  /** Close after the current reply is sent. */
  #closeAfterReply?: { code: number; reason: string };

  constructor(hub: Hub, conn: Connection) {
    this.#hub = hub;
    this.#s = hub.open(conn, { frontend: "slash" });
    this.#frames = new Ordered((frame) => this.#run(frame), MAX_QUEUED_FRAMES);
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
   * Runs one frame to its reply. Returns a promise only when the command had
   * to wait (for the store); the frames behind it wait too.
   */
  #run(frame: string | null): Promise<void> | undefined {
    const s = this.#s, hub = this.#hub;
    if (s.gone) return;
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
      this.#closeAfterReply = { code: CloseCodes.NOT_DESCRIBED, reason: "descp must come first" };
      return this.#error(c.cmd, Codes.ERR_NOTREGISTERED, "Describe yourself with /descp first");
    }
    const { wait, flood } = hub.limit(s, c.cmd);
    if (wait > 0) {
      if (flood) this.#closeAfterReply = { code: CloseCodes.FLOOD, reason: "flood" };
      return this.#error(c.cmd, Codes.RPL_TRYAGAIN, `Rate limited: retry in ${wait} ms`, wait);
    }
    let out: unknown;
    try {
      const handler = hub.commands[c.cmd] as (s: Session, c: Command) => unknown;
      out = handler(s, c);
    } catch (e) {
      this.#fail(c.cmd, e);
      return;
    }
    if (out instanceof Promise) {
      return out.then((data) => this.#ok(c.cmd, data), (e) => this.#fail(c.cmd, e));
    }
    this.#ok(c.cmd, out);
  }

  /** `{"type":"ok","cmd":…,"data":…}`, as `JSON.stringify` of an `OkReply` writes it. */
  #ok(cmd: CommandName, data: unknown): void {
    this.#reply('{"type":"ok","cmd":"' + cmd + '","data":' + JSON.stringify(data) + "}");
  }

  #error(cmd: string | null, code: Code, message: string, retryAfterMs?: number): undefined {
    this.#hub.metrics.count(this.#hub.metrics.errors, code);
    const reply: ErrorReply = { type: "error", cmd, code, error: codeName(code), message };
    if (retryAfterMs !== undefined) reply.retryAfterMs = retryAfterMs;
    this.#reply(JSON.stringify(reply));
    return undefined;
  }

  /** A handler threw: a refusal is its error reply, anything else a 503 and a log line. */
  #fail(cmd: CommandName, e: unknown): void {
    if (e instanceof Refusal) {
      if (e.close !== undefined) this.#closeAfterReply = e.close;
      return void this.#error(cmd, e.code, e.message, e.retryAfterMs);
    }
    this.#hub.unexpected("command", e, { cmd, peer: this.#s.id });
    this.#error(
      cmd,
      Codes.ERR_UNAVAILABLE,
      "The server could not complete this command; try again",
    );
  }

  #reply(text: string): void {
    this.#hub.reply(this.#s, text);
    const close = this.#closeAfterReply;
    if (close !== undefined) this.#hub.drop(this.#s, close.code, close.reason);
  }
}
