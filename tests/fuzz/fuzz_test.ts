/**
 * Fuzzing the live server, once per runtime: at least 100 000 random and
 * mutated frames — valid commands with corrupted arguments, random bytes as
 * binary frames, empty, huge, unicode, control-character and lone-surrogate
 * frames — interleaved on many connections. Every frame must get its reply
 * (valid against the protocol's schemas) unless the socket closes with a
 * documented code; the server must log no error and serve a fresh client
 * correctly afterwards.
 *
 * The frames come from a seeded PRNG; the seed is printed, and `FUZZ_SEED=N`
 * replays the same frames (their interleaving across connections may differ).
 * `FUZZ_FRAMES=N` changes the number of frames per runtime. `FUZZ_REPORT=FILE`
 * appends each runtime's figures, once every check has passed, to FILE as one
 * JSON line (`FuzzFigures`): `bench/fuzz.ts` turns them into the report's
 * "Fuzz" section.
 */
import assert from "node:assert/strict";
import { parseServerFrame } from "../../protocol/mod.ts";
import { newChannel, newId, peer } from "../support/client.ts";
import { RawClient, type RawFrame } from "../support/raw_ws.ts";
import { bbtest, startServer } from "../support/server.ts";
import { within } from "../support/wait.ts";

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? crypto.getRandomValues(new Uint32Array(1))[0]);
const FRAMES = Number(Deno.env.get("FUZZ_FRAMES") ?? 100_000);
/** Concurrent connections, and frames sent per write on each. */
const CONNS = 24;
const BATCH = 100;
/** A small --max-frame makes oversized (417) and runtime-refused (1009) frames cheap. */
const MAX_FRAME = 4096;
/** The close codes PROTOCOL.md documents. */
const DOCUMENTED = new Set([1001, 1009, 4001, 4002, 4003, 4008]);

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What a generated frame may refer to: this connection's id, other peers, a channel pool. */
interface Scene {
  self: string;
  peers: string[];
  channels: string[];
}

const COMMANDS = [
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
];

/** Frames from one seeded generator. */
class FrameGen {
  readonly #r: () => number;
  readonly #enc = new TextEncoder();

  constructor(seed: number) {
    this.#r = prng(seed);
  }

  int(n: number): number {
    return Math.floor(this.#r() * n);
  }

  chance(p: number): boolean {
    return this.#r() < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  /** One code unit or code point of a randomly chosen kind. */
  char(): string {
    switch (this.int(10)) {
      case 0:
        return String.fromCharCode(this.int(32)); // C0 controls, NUL included
      case 1:
        return this.pick(["\ud800", "\udbff", "\udc00", "\udfff"]); // lone surrogates
      case 2:
        return String.fromCodePoint(0x1f300 + this.int(0x300)); // astral: emoji
      case 3:
        return String.fromCharCode(0x80 + this.int(0xd800 - 0x80)); // BMP
      case 4:
        return this.pick(["\u202e", "\u200b", "\ufeff", "\u0301", "\uffff", "\u2028", "\x7f"]);
      case 5:
        return this.pick([" ", "  ", "\t", "\r\n", "\n", "#", "/", "{", "}", '"', "\\"]);
      default:
        return String.fromCharCode(0x20 + this.int(95)); // printable ASCII
    }
  }

  text(max: number): string {
    let s = "";
    const n = this.int(max + 1);
    for (let i = 0; i < n; i++) s += this.char();
    return s;
  }

  /** An id: mostly a real one, sometimes a near miss. */
  id(scene: Scene): string {
    const real = this.chance(0.3) ? scene.self : this.pick(scene.peers);
    if (this.chance(0.8)) return this.chance(0.2) ? real.toUpperCase() : real;
    return this.pick([
      newId(),
      real.slice(0, 23),
      real + "0",
      real.slice(0, 10) + "g" + real.slice(11),
      "",
      this.text(30),
    ]);
  }

  channel(scene: Scene): string {
    const ch = this.pick(scene.channels);
    if (this.chance(0.85)) return ch;
    return this.pick([ch.slice(1), "#" + ch, ch.slice(0, 20), "#" + this.text(24), "#"]);
  }

  /** A well-formed command with plausible arguments. */
  command(scene: Scene): string {
    const cmd = this.pick(COMMANDS);
    const t = () => this.text(this.chance(0.05) ? 2000 : 60);
    switch (cmd) {
      case "descp":
        return `/descp ${this.descp(scene)}`;
      case "join":
        return `/join ${this.channel(scene)}${this.chance(0.3) ? " " + this.text(20) : ""}`;
      case "quit":
        return `/quit ${this.channel(scene)}`;
      case "privmsg":
        return `/privmsg ${this.id(scene)} ${t()}`;
      case "pubmsg":
        return `/pubmsg ${this.channel(scene)} ${t()}`;
      case "whois":
        return `/whois ${this.chance(0.5) ? this.id(scene) : this.channel(scene)}`;
      case "peers":
        return `/peers ${this.channel(scene)}${
          this.chance(0.5)
            ? " " + this.pick(["0", "1", "-1", "500", "1e3", "x", "99999999999"])
            : ""
        }`;
      case "away":
        return this.chance(0.5) ? "/away" : `/away ${t()}`;
      case "kick":
        return `/kick ${this.id(scene)} ${this.chance(0.7) ? this.channel(scene) : ""} ${t()}`;
      default:
        return `/${cmd} ${this.id(scene)} ${this.chance(0.7) ? this.channel(scene) : ""}`;
    }
  }

  /** A `/descp` body: its own id (an update), another id (462), or broken JSON. */
  descp(scene: Scene): string {
    const fields: Record<string, unknown> = {
      id: this.chance(0.9) ? scene.self : this.id(scene),
      name: this.chance(0.9) ? this.text(70) : this.pick([null, 3, [], {}, "", true]),
    };
    for (let i = this.int(4); i > 0; i--) {
      fields[
        this.pick(["__proto__", "constructor", "resume", "since", "admin", "x", this.text(8)])
      ] = this.pick<unknown>([this.text(30), 1e308, -0, null, [1, [2, [3]]], { a: { b: {} } }]);
    }
    const json = JSON.stringify(fields);
    return this.chance(0.8) ? json : this.mutate(json);
  }

  /** `s` with a few random edits. */
  mutate(s: string): string {
    let out = s;
    for (let k = 1 + this.int(3); k > 0; k--) {
      const at = this.int(out.length + 1);
      switch (this.int(7)) {
        case 0:
          out = out.slice(0, at) + this.char() + out.slice(at + 1);
          break;
        case 1:
          out = out.slice(0, at) + this.text(12) + out.slice(at);
          break;
        case 2:
          out = out.slice(0, at) + out.slice(at + 1 + this.int(10));
          break;
        case 3:
          out = out.slice(0, at);
          break;
        case 4:
          out = out.slice(0, at) + out.slice(at, at + 8).repeat(1 + this.int(5)) + out.slice(at);
          break;
        case 5:
          out = out.replace(/^\/\w+/, (c) => this.chance(0.5) ? c.toUpperCase() : c + "x");
          break;
        default:
          out = out.replaceAll(" ", this.pick(["  ", "\t", "", " \u00a0"]));
      }
    }
    return out;
  }

  /** One frame of the mix. */
  frame(scene: Scene): RawFrame {
    const roll = this.#r();
    let text: string;
    if (roll < 0.45) text = this.command(scene);
    else if (roll < 0.75) text = this.mutate(this.command(scene));
    else if (roll < 0.82) text = this.text(200);
    else if (roll < 0.86) text = this.pick(["", "/", " ", "\n", "/ ", "//", "/\u0000"]);
    else if (roll < 0.93) {
      const bytes = new Uint8Array(this.int(600));
      for (let i = 0; i < bytes.length; i++) bytes[i] = this.int(256);
      return { opcode: 2, payload: bytes };
    } else if (roll < 0.95) {
      // Over --max-frame, under the runtime's limit: 417.
      text = `/pubmsg ${this.channel(scene)} ` + "x".repeat(MAX_FRAME + this.int(2 * MAX_FRAME));
    } else if (roll < 0.999) {
      text = this.command(scene);
    } else {
      // Over 16 × --max-frame: the runtime closes with 1009.
      text = this.command(scene) + "y".repeat(16 * MAX_FRAME + this.int(MAX_FRAME));
    }
    return { opcode: 1, payload: this.#enc.encode(text) };
  }
}

/** What one runtime's run appends to `FUZZ_REPORT`, once every check has passed. */
export interface FuzzFigures {
  runtime: string;
  seed: number;
  /** Frames asked for (`FUZZ_FRAMES`): at least this many were read by the server. */
  frames: number;
  /** Frames written, those behind a close included. */
  sent: number;
  /** Written behind a frame that closed the connection, so never read. */
  dropped: number;
  /** Frames answered with `ok` or `error`. */
  replies: number;
  /** Other messages received (events from other connections' frames). */
  events: number;
  connections: number;
  /** Connections the server closed, by close code. */
  closes: Record<string, number>;
  /** Lines the server logged at level error. */
  errorLogs: number;
  /** The server's exit code on SIGTERM after the fresh client's check. */
  exitCode: number;
  /** Milliseconds from the first connection to the last frame's answer. */
  ms: number;
}

/** Counts of one runtime's run. */
interface Tally {
  sent: number;
  /** Sent behind a frame that closed the connection, so never read. */
  dropped: number;
  replies: number;
  events: number;
  connections: number;
  closes: Map<number, number>;
}

/**
 * One connection's life: describe, then batches of frames, each batch fully
 * answered, until the budget runs out or the server closes it (with a code
 * the test then checks).
 */
async function fuzzConnection(
  url: string,
  gen: FrameGen,
  scene: Scene,
  budget: { left: number },
  tally: Tally,
): Promise<void> {
  using c = await RawClient.connect(url);
  tally.connections++;
  await c.sendText(`/descp ${JSON.stringify({ id: scene.self, name: "fuzz" })}`);
  let described = false;
  while (!described) {
    const f = await within(c.readFrame(), 10_000, "descp reply");
    assert.ok(f !== null && f.opcode !== 8, "closed before the descp reply");
    if (f.opcode !== 1) continue;
    described = parseServerFrame(new TextDecoder().decode(f.payload))
      .some((m) => m?.type === "ok" && m.cmd === "descp");
  }
  while (budget.left > 0) {
    const n = Math.min(BATCH, budget.left);
    budget.left -= n;
    const frames = Array.from({ length: n }, () => gen.frame(scene));
    tally.sent += n;
    const writing = c.sendFrames(frames).catch(() => {/* closed mid-write: read the close */});
    let answered = 0;
    while (answered < n) {
      const f = await within(c.readFrame(), 15_000, `reply ${answered + 1} of ${n}`);
      assert.ok(f !== null, `the connection ended without a close frame (${answered}/${n})`);
      if (f.opcode === 8) {
        const code = f.payload.length >= 2 ? (f.payload[0] << 8) | f.payload[1] : 1005;
        tally.closes.set(code, (tally.closes.get(code) ?? 0) + 1);
        assert.ok(DOCUMENTED.has(code), `closed with undocumented code ${code}`);
        // The frames behind the one that closed it were never read: they go back to the budget.
        tally.replies += answered;
        tally.dropped += n - answered - 1;
        budget.left += n - answered - 1;
        await writing;
        return;
      }
      if (f.opcode !== 1) continue;
      for (const m of parseServerFrame(new TextDecoder().decode(f.payload))) {
        assert.ok(m !== null, "a message the protocol's schemas reject");
        if (m.type === "ok" || m.type === "error") answered++;
        else tally.events++;
      }
    }
    tally.replies += answered;
    await writing;
  }
}

bbtest(`fuzz: ${FRAMES} random and mutated frames on ${CONNS} connections`, async (rt) => {
  console.log(`[${rt}] fuzz seed ${SEED} (replay: FUZZ_SEED=${SEED})`);
  await using s = await startServer({
    runtime: rt,
    args: ["--rate", "0", "--max-frame", String(MAX_FRAME), "--max-conns-per-ip", "0"],
  });
  const t0 = Date.now();
  const budget = { left: FRAMES };
  const tally: Tally = {
    sent: 0,
    dropped: 0,
    replies: 0,
    events: 0,
    connections: 0,
    closes: new Map(),
  };
  const ids = Array.from({ length: CONNS }, () => newId());
  const channels = Array.from({ length: 6 }, () => newChannel());
  await Promise.all(ids.map(async (self, i) => {
    const gen = new FrameGen(SEED + i);
    while (budget.left > 0) {
      // A fresh id after a close: the old one is in its grace (433 without its token).
      const scene = { self, peers: ids, channels };
      await fuzzConnection(s.url, gen, scene, budget, tally);
      self = ids[i] = newId();
    }
  }));
  const ms = Date.now() - t0;
  console.log(
    `[${rt}] ${tally.sent} frames (${tally.dropped} behind a close), ${tally.replies} replies, ` +
      `${tally.events} events, ` +
      `${tally.connections} connections, closes ${JSON.stringify([...tally.closes])}, ` +
      `${ms} ms`,
  );
  // Every frame read was answered, or closed its connection with a documented code.
  const closes = [...tally.closes.values()].reduce((a, b) => a + b, 0);
  assert.equal(tally.replies + closes, tally.sent - tally.dropped);
  assert.ok(tally.sent - tally.dropped >= FRAMES);

  // Nothing failed inside the server, and it still serves.
  const errors = s.logs().filter((l) => l.includes('"level":"error"'));
  assert.deepEqual(errors, []);
  {
    await using a = await peer(s.url, { name: "after" });
    await using b = await peer(s.url, { name: "fuzz" });
    const ch = newChannel();
    await a.ok(`/join ${ch}`);
    await b.ok(`/join ${ch}`);
    await a.ok(`/pubmsg ${ch} still here`);
    assert.equal((await b.event("pubmsg")).text, "still here");
    await b.ok(`/privmsg ${a.id} and you`);
    assert.equal((await a.event("privmsg")).text, "and you");
  }
  // It never crashed: still running now, it shuts down cleanly.
  const exitCode = await s.stop();
  assert.equal(exitCode, 0);

  const report = Deno.env.get("FUZZ_REPORT");
  if (!report) return;
  const { sent, dropped, replies, events, connections } = tally;
  const figures: FuzzFigures = {
    runtime: rt,
    seed: SEED,
    frames: FRAMES,
    sent,
    dropped,
    replies,
    events,
    connections,
    closes: Object.fromEntries(tally.closes),
    errorLogs: errors.length,
    exitCode,
    ms,
  };
  await Deno.writeTextFile(report, JSON.stringify(figures) + "\n", { append: true });
});
