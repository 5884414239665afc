/**
 * The slash-command grammar, client → server (PROTOCOL.md, "Command grammar").
 *
 * `parseCommand` turns a frame into a typed command or a protocol error;
 * `formatCommand` is its inverse, used by clients.
 */
import { type Code, Codes } from "./codes.ts";
import { isChannelId, isPeerId } from "./ids.ts";
import { MAX_KEY, MAX_META, MAX_NAME } from "./limits.ts";

/** Every command name, lowercase. */
export const COMMANDS = [
  "descp",
  "join",
  "quit",
  "privmsg",
  "pubmsg",
  "broadcast",
  "whois",
  "peers",
  "invite",
  "away",
  "kick",
  "ban",
  "unban",
] as const;

/** A command name, lowercase. */
export type CommandName = typeof COMMANDS[number];

/** A peer's self-description, the argument of `/descp`, validated. */
export interface Description {
  id: string;
  name: string;
  meta: Record<string, unknown>;
  resume?: string;
  token?: string;
  admin?: string;
  /** With `resume`: the positions the client has, to replay what it missed. */
  since?: Since;
}

/** Stream positions a resuming client has: its inbox and channels. */
export interface Since {
  inbox?: { epoch: string; seq: number };
  channels?: Record<string, { epoch: string; seq: number }>;
}

/** A parsed command frame. Ids are lowercase. */
export type Command =
  | { cmd: "descp"; desc: Description }
  | { cmd: "join"; channel: string; token?: string }
  | { cmd: "quit"; channel: string }
  | { cmd: "privmsg"; peer: string; text: string }
  | { cmd: "pubmsg"; channel: string; text: string }
  | { cmd: "broadcast"; text: string }
  | { cmd: "whois"; peer?: string; channel?: string }
  | { cmd: "peers"; channel: string; offset: number }
  | { cmd: "invite"; peer: string; channel?: string }
  | { cmd: "away"; text?: string }
  | { cmd: "kick"; peer: string; channel?: string; text?: string }
  | { cmd: "ban" | "unban"; peer: string; channel?: string };

/** The arguments of command `C`, as parsed. */
export type CommandArgs<C extends CommandName> = Omit<Command & { cmd: C }, "cmd">;

/** Why a frame is not a valid command: the code and message of its error reply. */
export interface ParseError {
  cmd: CommandName | null;
  code: Code;
  message: string;
}

/** The result of {@linkcode parseCommand}. */
export type ParseResult = { ok: true; command: Command } | { ok: false; error: ParseError };

const NAMES = new Set<string>(COMMANDS);
const LONGEST_COMMAND = Math.max(...COMMANDS.map((c) => c.length));
const ALPHA = /^[A-Za-z]+$/;

/** Thrown inside the parser only; turned into a {@linkcode ParseError}. */
class Bad {
  constructor(readonly code: Code, readonly message: string) {}
}

/** Error codes in the order the protocol gives them precedence. */
const PRECEDENCE: Code[] = [
  Codes.ERR_INPUTTOOLONG,
  Codes.ERR_NEEDMOREPARAMS,
  Codes.ERR_ERRONEUSNICKNAME,
];

/**
 * Reads space-separated words off a frame, and the verbatim text after them.
 * Malformed or oversized words are noted and reading goes on, so a missing or
 * extra argument (461) can still outrank them as the protocol orders.
 */
class Reader {
  #s: string;
  #i: number;
  /** Problems found so far that do not stop reading (417, 432). */
  noted?: Bad[];
  constructor(s: string, i: number) {
    this.#s = s;
    this.#i = i;
  }
  /** The next word after a run of spaces, or undefined at the end. */
  word(): string | undefined {
    const s = this.#s;
    let i = this.#i;
    while (s.charCodeAt(i) === 32) i++;
    if (i >= s.length) {
      this.#i = i;
      return undefined;
    }
    let j = s.indexOf(" ", i);
    if (j < 0) j = s.length;
    this.#i = j;
    return s.slice(i, j);
  }
  /** The next word without consuming it. */
  peek(): string | undefined {
    const at = this.#i;
    const w = this.word();
    this.#i = at;
    return w;
  }
  /** Everything after exactly one space, verbatim; undefined when empty. */
  text(): string | undefined {
    const s = this.#s;
    if (this.#i >= s.length) return undefined;
    // `#i` sits on the single separating space.
    const t = s.slice(this.#i + 1);
    this.#i = s.length;
    return t.length > 0 ? t : undefined;
  }
  /** Notes a problem; the most important one is reported at the end. */
  note(code: Code, message: string): void {
    (this.noted ??= []).push(new Bad(code, message));
  }
  /** 461 when words remain that the command does not take. */
  end(): void {
    if (this.word() !== undefined) throw new Bad(Codes.ERR_NEEDMOREPARAMS, "Too many arguments");
  }
}

function peerArg(r: Reader, what = "peer id"): string {
  const w = r.word();
  if (w === undefined) throw new Bad(Codes.ERR_NEEDMOREPARAMS, `Missing ${what}`);
  if (!isPeerId(w)) r.note(Codes.ERR_ERRONEUSNICKNAME, `Malformed peer id: ${clip(w)}`);
  return w.toLowerCase();
}

function channelArg(r: Reader): string {
  const w = r.word();
  if (w === undefined) throw new Bad(Codes.ERR_NEEDMOREPARAMS, "Missing channel");
  return channelWord(r, w);
}

function channelWord(r: Reader, w: string): string {
  if (!isChannelId(w)) r.note(Codes.ERR_ERRONEUSNICKNAME, `Malformed channel: ${clip(w)}`);
  return w.toLowerCase();
}

/** An optional channel: the next word when it starts with `#`. */
function optionalChannel(r: Reader): string | undefined {
  const w = r.peek();
  if (w === undefined || w[0] !== "#") return undefined;
  r.word();
  return channelWord(r, w);
}

function requiredText(r: Reader): string {
  const t = r.text();
  if (t === undefined) throw new Bad(Codes.ERR_NEEDMOREPARAMS, "Missing text");
  return t;
}

function clip(s: string): string {
  return s.length > 40 ? s.slice(0, 40) + "…" : s;
}

/** Byte length of `s` as UTF-8. */
export function byteLength(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // A surrogate half counts 2 here, so a pair makes 4 bytes.
    if (c >= 0x80) n += c >= 0x800 && (c < 0xd800 || c > 0xdfff) ? 2 : 1;
  }
  return n;
}

/**
 * Validates the JSON argument of `/descp`: `id` and `name` required, the
 * reserved fields `resume`, `token`, `admin` split off, everything else kept
 * as `meta` (a `__proto__` key stays plain data).
 */
export function parseDescription(json: string): Description {
  let body: unknown;
  try {
    body = JSON.parse(json);
  } catch {
    throw new Bad(Codes.ERR_ERRONEUSNICKNAME, "descp takes a JSON object");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new Bad(Codes.ERR_ERRONEUSNICKNAME, "descp takes a JSON object");
  }
  // Rest destructuring copies own data properties: `__proto__` stays a key.
  const { id, name, resume, token, admin, since, ...meta } = body as Record<string, unknown>;
  // 417 (size) outranks 432 (syntax).
  if (typeof name === "string" && [...name].length > MAX_NAME) {
    throw new Bad(Codes.ERR_INPUTTOOLONG, `name is longer than ${MAX_NAME} characters`);
  }
  if (byteLength(JSON.stringify(meta)) > MAX_META) {
    throw new Bad(Codes.ERR_INPUTTOOLONG, `meta is larger than ${MAX_META} bytes`);
  }
  if (typeof id !== "string" || !isPeerId(id)) {
    throw new Bad(Codes.ERR_ERRONEUSNICKNAME, "id must be 24 hex digits (a BSON ObjectId)");
  }
  if (typeof name !== "string" || name.length === 0) {
    throw new Bad(Codes.ERR_ERRONEUSNICKNAME, "name must be a non-empty string");
  }
  for (const [field, v] of [["resume", resume], ["token", token], ["admin", admin]]) {
    if (v !== undefined && typeof v !== "string") {
      throw new Bad(Codes.ERR_ERRONEUSNICKNAME, `${field} must be a string`);
    }
  }
  const desc: Description = { id: id.toLowerCase(), name, meta };
  if (since !== undefined) desc.since = parseSince(since);
  if (typeof resume === "string") desc.resume = resume;
  if (typeof token === "string") desc.token = token;
  if (typeof admin === "string") desc.admin = admin;
  return desc;
}

/** Validates the `since` field of `/descp`: positions by stream, channels lowercased. */
function parseSince(v: unknown): Since {
  const bad = () =>
    new Bad(Codes.ERR_ERRONEUSNICKNAME, "since must be {inbox?, channels?} of {epoch, seq}");
  const position = (p: unknown) => {
    const { epoch, seq } = (p ?? {}) as Record<string, unknown>;
    if (typeof epoch !== "string" || !Number.isSafeInteger(seq) || (seq as number) < 0) throw bad();
    return { epoch, seq: seq as number };
  };
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw bad();
  const { inbox, channels } = v as Record<string, unknown>;
  const out: Since = {};
  if (inbox !== undefined) out.inbox = position(inbox);
  if (channels !== undefined) {
    if (typeof channels !== "object" || channels === null || Array.isArray(channels)) throw bad();
    out.channels = {};
    for (const [c, p] of Object.entries(channels)) {
      if (!isChannelId(c)) {
        throw new Bad(Codes.ERR_ERRONEUSNICKNAME, `Malformed channel: ${clip(c)}`);
      }
      out.channels[c.toLowerCase()] = position(p);
    }
  }
  return out;
}

function parseArgs(cmd: CommandName, r: Reader): Command {
  switch (cmd) {
    case "descp": {
      const t = r.text();
      if (t === undefined) throw new Bad(Codes.ERR_NEEDMOREPARAMS, "descp needs a JSON object");
      return { cmd, desc: parseDescription(t) };
    }
    case "join": {
      const channel = channelArg(r);
      const token = r.word();
      // Characters are code points: a key of 128 emoji fits.
      if (token !== undefined && token.length > MAX_KEY && [...token].length > MAX_KEY) {
        r.note(Codes.ERR_INPUTTOOLONG, `Channel key is longer than ${MAX_KEY} characters`);
      }
      r.end();
      return token === undefined ? { cmd, channel } : { cmd, channel, token };
    }
    case "quit": {
      const channel = channelArg(r);
      r.end();
      return { cmd, channel };
    }
    case "privmsg": {
      const peer = peerArg(r);
      return { cmd, peer, text: requiredText(r) };
    }
    case "pubmsg": {
      const channel = channelArg(r);
      return { cmd, channel, text: requiredText(r) };
    }
    case "broadcast":
      return { cmd, text: requiredText(r) };
    case "away": {
      const text = r.text();
      return text === undefined ? { cmd } : { cmd, text };
    }
    case "whois": {
      const w = r.word();
      if (w === undefined) throw new Bad(Codes.ERR_NEEDMOREPARAMS, "Missing peer id or channel");
      r.end();
      if (w[0] === "#") return { cmd, channel: channelWord(r, w) };
      if (!isPeerId(w)) r.note(Codes.ERR_ERRONEUSNICKNAME, `Malformed peer id: ${clip(w)}`);
      return { cmd, peer: w.toLowerCase() };
    }
    case "peers": {
      const channel = channelArg(r);
      const o = r.word();
      r.end();
      let offset = 0;
      if (o !== undefined) {
        if (!/^\d{1,9}$/.test(o)) {
          throw new Bad(Codes.ERR_NEEDMOREPARAMS, "offset must be a non-negative integer");
        }
        offset = Number(o);
      }
      return { cmd, channel, offset };
    }
    case "invite":
    case "ban":
    case "unban": {
      const peer = peerArg(r);
      const channel = optionalChannel(r);
      r.end();
      return channel === undefined ? { cmd, peer } : { cmd, peer, channel };
    }
    case "kick": {
      const peer = peerArg(r);
      const channel = optionalChannel(r);
      const text = r.text();
      const c: Command = { cmd, peer };
      if (channel !== undefined) c.channel = channel;
      if (text !== undefined) c.text = text;
      return c;
    }
  }
}

/**
 * Parses one client frame. Never throws: a bad frame yields the error reply
 * the protocol prescribes (421 unknown, 461 arguments, 432 ids, 417 sizes).
 */
export function parseCommand(frame: string): ParseResult {
  if (frame.charCodeAt(0) !== 47 /* "/" */) {
    return fail(null, Codes.ERR_UNKNOWNCOMMAND, "A command starts with /");
  }
  const end = wordEnd(frame);
  const cmd = commandName(frame);
  if (cmd === null) {
    return fail(null, Codes.ERR_UNKNOWNCOMMAND, `Unknown command: ${clip(frame.slice(1, end))}`);
  }
  const r = new Reader(frame, end);
  try {
    const command = parseArgs(cmd, r);
    if (r.noted === undefined) return { ok: true, command };
  } catch (e) {
    if (!(e instanceof Bad)) throw e;
    (r.noted ??= []).push(e);
  }
  const worst = r.noted!.reduce((a, b) =>
    PRECEDENCE.indexOf(b.code) < PRECEDENCE.indexOf(a.code) ? b : a
  );
  return fail(cmd, worst.code, worst.message);
}

/**
 * The command a frame names, lowercase, or null when it names none: what an
 * error reply's `cmd` says, also for frames too large to parse.
 */
export function commandName(frame: string): CommandName | null {
  if (frame.charCodeAt(0) !== 47 /* "/" */) return null;
  // A command word is short: never look further into a huge frame than that.
  const word = frame.slice(1, Math.min(wordEnd(frame), LONGEST_COMMAND + 2));
  const name = word.toLowerCase();
  return ALPHA.test(word) && NAMES.has(name) ? name as CommandName : null;
}

/** Where the command word ends: the first space, or the end of the frame. */
function wordEnd(frame: string): number {
  const end = frame.indexOf(" ");
  return end < 0 ? frame.length : end;
}

function fail(cmd: CommandName | null, code: Code, message: string): ParseResult {
  return { ok: false, error: { cmd, code, message } };
}

/**
 * Formats a command frame: words joined by single spaces, the optional
 * trailing `text` appended verbatim.
 *
 * @example
 * ```ts
 * formatCommand("privmsg", ["65a1f0c2e4b0a1b2c3d4e5f6"], "v=0\r\n...");
 * ```
 */
export function formatCommand(
  cmd: CommandName,
  words: readonly string[] = [],
  text?: string,
): string {
  let frame = "/" + cmd;
  for (const w of words) frame += " " + w;
  if (text !== undefined && text.length > 0) frame += " " + text;
  return frame;
}
