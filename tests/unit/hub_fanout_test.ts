/**
 * Unit tests of the native fan-out's batching (`server/hub/delivery.ts`): a
 * channel's events of one turn leave as one publish per run of one sender,
 * and every socket still gets what it is sent in the order it was made.
 * Sockets batch per turn as the runtime adapters' do (`server/batch.ts`); a
 * fake fan-out writes a publish to its subscribers at once, as Bun's does.
 * Frames go through the slash front-end, so replies take their real way.
 */
import assert from "node:assert/strict";
import { Batched } from "../../server/batch.ts";
import { slash } from "../../server/frontends/slash.ts";
import type { SocketHandler } from "../../server/frontends/frontend.ts";
import { type Connection, type Fanout, Hub, type Session } from "../../server/hub/mod.ts";
import { MemoryStore } from "../../server/store/memory.ts";

/** A socket batched per turn that records the frames written to it. */
class FakeSocket extends Batched implements Connection {
  readonly frames: string[] = [];
  bufferedAmount = 0;
  remoteAddress = "127.0.0.1";
  /** The messages received, in order: `type`, and the text or peer it is about. */
  get log(): string[] {
    return this.frames.flatMap((f) => f.split("\n")).map((line) => {
      const m = JSON.parse(line);
      if (m.type === "ok" || m.type === "error") return `${m.type} ${m.cmd}`;
      return `${m.type} ${m.text ?? m.peer?.id ?? m.peer}`;
    });
  }
  protected write(frame: string): void {
    this.frames.push(frame);
  }
  failed(): void {}
  close(): void {}
}

/** Native topics: a publish is written to every subscriber but `except` at once. */
class FakeTopics implements Fanout {
  readonly topics = new Map<string, Set<FakeSocket>>();
  /** Every publish, in order: the topic and how many events its frame holds. */
  readonly published: { topic: string; events: number }[] = [];
  accepts(conn: Connection): boolean {
    return conn instanceof FakeSocket;
  }
  subscribe(conn: Connection, topic: string): void {
    if (!this.topics.has(topic)) this.topics.set(topic, new Set());
    this.topics.get(topic)!.add(conn as FakeSocket);
  }
  unsubscribe(conn: Connection, topic: string): void {
    this.topics.get(topic)?.delete(conn as FakeSocket);
  }
  publish(topic: string, text: string, except?: Connection): boolean {
    this.published.push({ topic, events: text.split("\n").length });
    for (const s of this.topics.get(topic) ?? []) if (s !== except) s.frames.push(text);
    return false;
  }
}

/** A peer: its socket, the front-end's handler of it, its session. */
interface Peer {
  conn: FakeSocket;
  in: SocketHandler;
  s: Session;
  id: string;
}

const CH = "#65a1f0c2e4b0a1b2c3d4e5f0";

function nextTurn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** A hub that remembers the last session it opened. */
class TestHub extends Hub {
  last?: Session;
  override open(conn: Connection, o?: { frontend?: string; countsOut?: boolean }): Session {
    return this.last = super.open(conn, o);
  }
}

function setup() {
  const store = new MemoryStore({ maxChannels: 100, retentionMs: 60_000 });
  const hub = new TestHub({ store, rate: 0 });
  const fanout = new FakeTopics();
  hub.useFanout(fanout);
  let n = 0;
  /** A described peer in `channels`, its setup's frames forgotten. */
  const peer = async (channels: string[] = [CH]): Promise<Peer> => {
    const conn = new FakeSocket();
    const handler = slash.open(hub, conn, new URL("ws://localhost/"));
    const s = hub.last!;
    const id = `65a1f0c2e4b0a1b2c3d4e${(0x100 + n++).toString(16)}`;
    handler.text(`/descp {"id":"${id}","name":"p${n}"}`);
    for (const c of channels) handler.text(`/join ${c}`);
    // `/descp` hashes its token off the event loop: wait for every reply.
    while (conn.log.filter((m) => /^(ok|error) /.test(m)).length < 1 + channels.length) {
      await nextTurn();
    }
    return { conn, in: handler, s, id };
  };
  /** Forgets every frame written so far. */
  const clear = async (...peers: Peer[]) => {
    await nextTurn();
    for (const p of peers) p.conn.frames.length = 0;
    fanout.published.length = 0;
  };
  return { hub, fanout, peer, clear, [Symbol.asyncDispose]: () => hub.shutdown() };
}

/** Calls `f` in the current turn and says whether it still was the same turn when it settled. */
async function sameTurn(f: () => Promise<unknown>): Promise<boolean> {
  let turned = false;
  setImmediate(() => turned = true);
  await f();
  return !turned;
}

Deno.test("native fan-out: a burst from one sender is one publish, in order, never to the sender", async () => {
  await using t = setup();
  const [a, b, c] = [await t.peer(), await t.peer(), await t.peer()];
  await t.clear(a, b, c);
  for (let i = 1; i <= 5; i++) a.in.text(`/pubmsg ${CH} m${i}`);
  assert.deepEqual(t.fanout.published, [], "nothing leaves within the turn");
  await nextTurn();
  assert.deepEqual(t.fanout.published, [{ topic: `c:${CH}`, events: 5 }]);
  const burst = ["m1", "m2", "m3", "m4", "m5"].map((m) => `pubmsg ${m}`);
  for (const x of [b, c]) {
    assert.equal(x.conn.frames.length, 1, "one frame");
    assert.deepEqual(x.conn.log, burst);
  }
  assert.deepEqual(a.conn.log, Array(5).fill("ok pubmsg"), "the sender gets its replies only");
});

Deno.test("native fan-out: two senders interleaved in one turn: production order to all, none to its sender", async () => {
  await using t = setup();
  const [a, b, c] = [await t.peer(), await t.peer(), await t.peer()];
  await t.clear(a, b, c);
  a.in.text(`/pubmsg ${CH} a1`);
  a.in.text(`/pubmsg ${CH} a2`);
  b.in.text(`/pubmsg ${CH} b1`);
  a.in.text(`/pubmsg ${CH} a3`);
  b.in.text(`/pubmsg ${CH} b2`);
  await nextTurn();
  assert.deepEqual(c.conn.log, ["a1", "a2", "b1", "a3", "b2"].map((m) => `pubmsg ${m}`));
  // Each sender's replies sit where they were made among the other's events.
  assert.deepEqual(a.conn.log, [
    "ok pubmsg",
    "ok pubmsg",
    "pubmsg b1",
    "ok pubmsg",
    "pubmsg b2",
  ]);
  assert.deepEqual(b.conn.log, ["pubmsg a1", "pubmsg a2", "ok pubmsg", "pubmsg a3", "ok pubmsg"]);
  // The runs of one sender still left as one frame each.
  assert.deepEqual(t.fanout.published.map((p) => p.events), [2, 1, 1, 1]);
});

Deno.test("native fan-out: a peer kicked in the same turn gets the events before, its kick, nothing after", async () => {
  await using t = setup();
  const [op, b, c] = [await t.peer(), await t.peer(), await t.peer()];
  await t.clear(op, b, c);
  const same = await sameTurn(async () => {
    op.in.text(`/pubmsg ${CH} m1`);
    op.in.text(`/pubmsg ${CH} m2`);
    await t.hub.commands.kick(op.s, { peer: b.id, channel: CH });
    op.in.text(`/pubmsg ${CH} m3`);
  });
  assert.ok(same, "the kick settled within the turn");
  await nextTurn();
  assert.deepEqual(b.conn.log, ["pubmsg m1", "pubmsg m2", `kick ${b.id}`]);
  assert.deepEqual(c.conn.log, ["pubmsg m1", "pubmsg m2", `kick ${b.id}`, "pubmsg m3"]);
});

Deno.test("native fan-out: a peer joining in the same turn gets none of the events before its join", async () => {
  await using t = setup();
  const [a, c] = [await t.peer(), await t.peer()];
  const j = await t.peer([]);
  await t.clear(a, c, j);
  const same = await sameTurn(async () => {
    a.in.text(`/pubmsg ${CH} before`);
    await t.hub.commands.join(j.s, { channel: CH });
    a.in.text(`/pubmsg ${CH} after`);
  });
  assert.ok(same, "the join settled within the turn");
  await nextTurn();
  assert.deepEqual(j.conn.log, ["pubmsg after"]);
  assert.deepEqual(c.conn.log, ["pubmsg before", `join ${j.id}`, "pubmsg after"]);
});

Deno.test("native fan-out: a direct send to a peer waiting for a channel event comes after it", async () => {
  await using t = setup();
  const [a, b, c] = [await t.peer(), await t.peer(), await t.peer()];
  await t.clear(a, b, c);
  const outsider = await t.peer([]);
  await t.clear(a, b, c, outsider);
  a.in.text(`/pubmsg ${CH} third`);
  a.in.text(`/privmsg ${b.id} fourth`);
  // An operator's ban of a non-member: the channel's event, then the operator's reply.
  a.in.text(`/ban ${outsider.id} ${CH}`);
  await nextTurn();
  assert.deepEqual(b.conn.log, ["pubmsg third", "privmsg fourth", `ban ${outsider.id}`]);
  assert.deepEqual(a.conn.log, ["ok pubmsg", "ok privmsg", `ban ${outsider.id}`, "ok ban"]);
  assert.deepEqual(outsider.conn.log, [`ban ${outsider.id}`]);
});

Deno.test("native fan-out: a peer in two channels gets their events in the order they were made", async () => {
  await using t = setup();
  const CH2 = "#65a1f0c2e4b0a1b2c3d4e5f1";
  const [a, b] = [await t.peer([CH, CH2]), await t.peer([CH, CH2])];
  const c = await t.peer([CH]);
  await t.clear(a, b, c);
  a.in.text(`/pubmsg ${CH} x1`);
  a.in.text(`/pubmsg ${CH2} y1`);
  a.in.text(`/pubmsg ${CH} x2`);
  await nextTurn();
  assert.deepEqual(b.conn.log, ["pubmsg x1", "pubmsg y1", "pubmsg x2"]);
  assert.deepEqual(c.conn.log, ["pubmsg x1", "pubmsg x2"]);
});
