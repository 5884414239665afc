/**
 * Per-turn batching (`server/batch.ts`): what one socket is sent within one
 * turn of the event loop leaves as one frame, in order; `flushBatches` writes
 * every batch at once, for a runtime that writes some events around them.
 */
import assert from "node:assert/strict";
import { Batched, flushAfter, flushBatches } from "../../server/batch.ts";

/** A socket that records its frames, in a log shared with others to see write order. */
class Recorder extends Batched {
  constructor(readonly name: string, readonly log: string[][]) {
    super();
  }
  frames(): string[] {
    return this.log.filter(([n]) => n === this.name).map(([, f]) => f);
  }
  /** Set to make the next write throw. */
  broken = false;
  failures: unknown[] = [];
  protected write(frame: string): void {
    if (this.broken) throw new RangeError("Invalid string length");
    this.log.push([this.name, frame]);
  }
  failed(error: unknown): void {
    this.failures.push(error);
  }
}

/** Resolves after the batches of this turn were flushed (they run on an earlier setImmediate). */
function nextTurn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

Deno.test("events sent within one turn leave as one frame, newline-joined, in order", async () => {
  const log: string[][] = [];
  const s = new Recorder("s", log);
  s.send('{"n":1}');
  s.send('{"n":2}');
  s.send('{"n":3}');
  assert.deepEqual(log, [], "nothing is written within the turn");
  await nextTurn();
  assert.deepEqual(s.frames(), ['{"n":1}\n{"n":2}\n{"n":3}']);
});

Deno.test("a single event is its own frame, without a newline", async () => {
  const s = new Recorder("s", []);
  s.send('{"only":true}');
  await nextTurn();
  assert.deepEqual(s.frames(), ['{"only":true}']);
});

Deno.test("each turn makes its own frame; an idle turn writes nothing", async () => {
  const s = new Recorder("s", []);
  s.send("a");
  s.send("b");
  await nextTurn();
  await nextTurn();
  s.send("c");
  await nextTurn();
  assert.deepEqual(s.frames(), ["a\nb", "c"]);
});

Deno.test("several sockets: one frame each per turn, written in the order they were first sent to", async () => {
  const log: string[][] = [];
  const [x, y, z] = ["x", "y", "z"].map((n) => new Recorder(n, log));
  y.send("y1");
  x.send("x1");
  y.send("y2");
  z.send("z1");
  x.send("x2");
  await nextTurn();
  assert.deepEqual(log, [["y", "y1\ny2"], ["x", "x1\nx2"], ["z", "z1"]]);
});

Deno.test("flushBatches writes every batch now, so a direct write after it comes after them", async () => {
  const log: string[][] = [];
  const a = new Recorder("a", log);
  const b = new Recorder("b", log);
  a.send("a1");
  b.send("b1");
  a.send("a2");
  // A runtime about to write around the batches (Bun's native publish) flushes first.
  flushBatches();
  log.push(["published", "p"]);
  assert.deepEqual(log, [["a", "a1\na2"], ["b", "b1"], ["published", "p"]]);
  // Nothing is written twice when the turn's own flush runs.
  await nextTurn();
  assert.equal(log.length, 3);
  // Sends after the explicit flush, in the same turn, make the next frame.
  a.send("a3");
  await nextTurn();
  assert.deepEqual(a.frames(), ["a1\na2", "a3"]);
});

Deno.test("a socket's flush() writes only its own batch, once", async () => {
  const log: string[][] = [];
  const a = new Recorder("a", log);
  const b = new Recorder("b", log);
  a.send("a1");
  b.send("b1");
  a.flush();
  a.flush();
  assert.deepEqual(log, [["a", "a1"]]);
  await nextTurn();
  assert.deepEqual(log, [["a", "a1"], ["b", "b1"]]);
});

Deno.test("a socket whose flush throws is told, and every other batch still leaves", async () => {
  const log: string[][] = [];
  const bad = new Recorder("bad", log);
  const good = new Recorder("good", log);
  bad.broken = true;
  bad.send('{"n":1}');
  good.send('{"n":2}');
  await nextTurn();
  assert.equal(bad.failures.length, 1);
  assert.deepEqual(good.frames(), ['{"n":2}']);
  good.send('{"n":3}');
  await nextTurn();
  assert.deepEqual(good.frames(), ['{"n":2}', '{"n":3}'], "later turns flush too");
});

/** A socket whose protocol wants one message per frame, recording how its frames were written. */
class FrameRecorder extends Batched {
  writes: string[][] = [];
  constructor() {
    super(false);
  }
  protected write(frame: string): void {
    this.writes.push([frame]);
  }
  protected override writeFrames(frames: string[]): void {
    this.writes.push([...frames]);
  }
  failed(): void {}
}

Deno.test("without batching, a turn's messages leave as one frame each, written together", async () => {
  const s = new FrameRecorder();
  s.send('{"n":1}');
  s.send('{"n":2}');
  assert.deepEqual(s.writes, [], "nothing is written within the turn");
  await nextTurn();
  assert.deepEqual(s.writes, [['{"n":1}', '{"n":2}']]);
  s.send('{"n":3}');
  await nextTurn();
  assert.deepEqual(s.writes.at(-1), ['{"n":3}']);
});

Deno.test("flushAfter runs once at the end of the turn, after every batch", async () => {
  const log: string[][] = [];
  const a = new Recorder("a", log);
  const after = () => log.push(["after", ""]);
  flushAfter(after);
  flushAfter(after);
  a.send("a1");
  assert.deepEqual(log, []);
  await nextTurn();
  assert.deepEqual(log, [["a", "a1"], ["after", ""]]);
  await nextTurn();
  assert.equal(log.length, 2, "once");
  // With an explicit flush, it runs there, after the batches, and not again at the end of the turn.
  flushAfter(after);
  a.send("a2");
  flushBatches();
  assert.deepEqual(log.slice(2), [["a", "a2"], ["after", ""]]);
  await nextTurn();
  assert.equal(log.length, 4);
});

Deno.test("sockets sent the same events in a turn share one frame; others get their own", async () => {
  const log: string[][] = [];
  const [a, b, c] = ["a", "b", "c"].map((n) => new Recorder(n, log));
  const e1 = '{"n":1}', e2 = '{"n":2}';
  for (const s of [a, b]) {
    s.send(e1);
    s.send(e2);
  }
  // Same length, other content: not the shared frame.
  c.send('{"n":3}');
  c.send('{"n":4}');
  await nextTurn();
  assert.deepEqual(a.frames(), [`${e1}\n${e2}`]);
  assert.equal(b.frames()[0], a.frames()[0]);
  assert.deepEqual(c.frames(), ['{"n":3}\n{"n":4}']);
});
