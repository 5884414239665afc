/**
 * The Redis bus's envelopes (`server/store/redis_bus.ts`): every shape of
 * envelope arrives at the other nodes as it was published, text verbatim; a
 * node never gets its own back; garbled messages are dropped. The encoding is
 * private to the module, so this goes through two `RedisBus` instances on a
 * real Redis, and writes raw messages with a plain client to check decoding.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import type { Envelope } from "../../server/bus/bus.ts";
import { busChannel, RedisBus } from "../../server/bus/redis.ts";
import { assertRedis, redisTests, uniquePrefix } from "../support/redis.ts";
import { until, within } from "../support/wait.ts";

const env = await redisTests();

/** What a bus delivered, and a way to wait for the next of it. */
class Inbox {
  readonly got: [string, Envelope][] = [];
  #waiters: (() => void)[] = [];
  deliver = (topic: string, e: Envelope): void => {
    this.got.push([topic, e]);
    for (const w of this.#waiters.splice(0)) w();
  };
  /** Resolves once `n` envelopes have arrived in all. */
  async count(n: number, what: string): Promise<void> {
    while (this.got.length < n) {
      await within(new Promise<void>((r) => this.#waiters.push(r)), 5000, what);
    }
  }
}

/** Two nodes' buses on one prefix, a raw client, and cleanup. */
async function world() {
  const prefix = uniquePrefix("bus");
  const inA = new Inbox();
  const inB = new Inbox();
  const a = new RedisBus(env.url, { node: "node-a", prefix, deliver: inA.deliver });
  const b = new RedisBus(env.url, { node: "node-b", prefix, deliver: inB.deliver });
  const raw = new Redis(env.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  raw.on("error", () => {});
  await Promise.all([a.ready(), b.ready(), raw.connect()]);
  /** Waits until `topic` has `n` subscribers (SUBSCRIBE is sent once the bus is ready). */
  const subscribers = (topic: string, n: number) =>
    until(
      async () => {
        const [, count] = (await raw.pubsub("NUMSUB", busChannel(prefix, topic))) as [
          string,
          number,
        ];
        return Number(count) === n;
      },
      5000,
      `${n} subscribers of ${topic}`,
      { every: 20 },
    );
  return {
    prefix,
    a,
    b,
    inA,
    inB,
    raw,
    subscribers,
    async [Symbol.asyncDispose]() {
      await Promise.all([a.close(), b.close(), raw.quit().catch(() => raw.disconnect())]);
    },
  };
}

const ENVELOPES: Envelope[] = [
  { text: '{"type":"pubmsg","text":"hello"}' },
  { text: '{"type":"pubmsg"}', except: "65a1f0c2e4b0a1b2c3d4e5f6" },
  { text: '{"type":"away"}', channels: ["#65a1f0c2e4b0a1b2c3d4e5f7", "#65a1f0c2e4b0a1b2c3d4e5f8"] },
  {
    text: '{"type":"kick"}',
    drop: "65a1f0c2e4b0a1b2c3d4e5f9",
    except: "65a1f0c2e4b0a1b2c3d4e5fa",
  },
  { replace: "session-nonce" }, // no text at all
  {}, // nothing
  { text: "" },
  // The text is carried verbatim, newlines and all, though events never hold a raw one.
  { text: 'line one\nline two\r\n\n{"not":"parsed"}\n' },
  { text: "\u{1F600} é 中文" },
];

Deno.test({
  name: "redis bus: every envelope shape arrives as published, in order; never back to its node",
  ignore: env.ignore,
  fn: async () => {
    assertRedis(env);
    await using w = await world();
    w.a.subscribe("c:x");
    w.b.subscribe("c:x");
    await w.subscribers("c:x", 2);
    for (const e of ENVELOPES) w.a.publish("c:x", e);
    await w.inB.count(ENVELOPES.length, "every envelope at node B");
    assert.deepEqual(w.inB.got, ENVELOPES.map((e) => ["c:x", e]));
    // Barrier: B's reply reaches A after anything A published before it.
    w.b.publish("c:x", { text: "marker" });
    await w.inA.count(1, "the marker at node A");
    assert.deepEqual(w.inA.got, [["c:x", { text: "marker" }]], "A got none of its own");
  },
});

Deno.test({
  name: "redis bus: raw messages decode by the wire format; garbled ones and its own are dropped",
  ignore: env.ignore,
  fn: async () => {
    assertRedis(env);
    await using w = await world();
    w.b.subscribe("p:65a1f0c2e4b0a1b2c3d4e5f6");
    await w.subscribers("p:65a1f0c2e4b0a1b2c3d4e5f6", 1);
    const channel = busChannel(w.prefix, "p:65a1f0c2e4b0a1b2c3d4e5f6");
    for (
      const payload of [
        "no newline at all", // garbled
        "third\n{not json\ntext", // garbled header
        "node-b\n\nfrom itself", // its own node id: already delivered locally
        'third\n{"except":"65a1f0c2e4b0a1b2c3d4e5fb"}\n{"type":"privmsg"}',
        "third\n\ntext\nwith\nnewlines",
        'third\n{"replace":"n1"}', // a header and no text
        "third\n", // nothing at all
        "node-bb\n\nanother node whose id starts alike",
      ]
    ) {
      await w.raw.publish(channel, payload);
    }
    await w.inB.count(5, "the well-formed messages");
    const topic = "p:65a1f0c2e4b0a1b2c3d4e5f6";
    assert.deepEqual(w.inB.got, [
      [topic, { except: "65a1f0c2e4b0a1b2c3d4e5fb", text: '{"type":"privmsg"}' }],
      [topic, { text: "text\nwith\nnewlines" }],
      [topic, { replace: "n1" }],
      [topic, {}],
      [topic, { text: "another node whose id starts alike" }],
    ]);
  },
});

Deno.test({
  name: "redis bus: after unsubscribe a node gets nothing more of that topic",
  ignore: env.ignore,
  fn: async () => {
    assertRedis(env);
    await using w = await world();
    w.b.subscribe("c:x");
    w.b.subscribe("all");
    await w.subscribers("c:x", 1);
    await w.subscribers("all", 1);
    w.a.publish("c:x", { text: "before" });
    await w.inB.count(1, "the first envelope");
    w.b.unsubscribe("c:x");
    await w.subscribers("c:x", 0);
    w.a.publish("c:x", { text: "after" });
    w.a.publish("all", { text: "marker" }); // published after, so delivered after
    await w.inB.count(2, "the marker");
    assert.deepEqual(w.inB.got, [["c:x", { text: "before" }], ["all", { text: "marker" }]]);
  },
});
