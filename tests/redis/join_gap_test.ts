/**
 * A `/join` on Redis misses nothing published while it takes effect: a
 * message another node publishes between the join and this node's
 * subscription is replayed right after the reply, and the reply's `stream`
 * does not claim more than the joiner got.
 */
import assert from "node:assert/strict";
import { newChannelId, newId } from "../../protocol/mod.ts";
import { RedisBus } from "../../server/bus/redis.ts";
import type { SocketHandler } from "../../server/frontends/frontend.ts";
import { slash } from "../../server/frontends/slash.ts";
import { type Connection, Hub } from "../../server/hub/mod.ts";
import { RedisStore } from "../../server/store/redis.ts";
import { deleteKeys, redisTests, uniquePrefix } from "../support/redis.ts";
import { until } from "../support/wait.ts";

const env = await redisTests();

class FakeConnection implements Connection {
  frames: string[] = [];
  bufferedAmount = 0;
  remoteAddress = "127.0.0.1";
  handler!: SocketHandler;
  send(text: string): void {
    this.frames.push(text);
  }
  close(): void {}
  get messages(): Record<string, unknown>[] {
    return this.frames.flatMap((f) => f.split("\n")).map((l) => JSON.parse(l));
  }
}

for (const subscribed of [false, true]) {
  Deno.test({
    name: `/join on Redis: a message published while it takes effect comes after the reply` +
      (subscribed ? " (node already subscribed)" : " (new channel)"),
    ignore: env.ignore,
    fn: async () => {
      const prefix = uniquePrefix("joingap");
      const limits = { maxChannels: 100, retentionMs: 60_000, history: 100, historyTtlMs: 60_000 };
      const store = new RedisStore(env.url, { node: "n1", prefix, limits });
      const other = new RedisStore(env.url, { node: "n2", prefix, limits });
      const late: { hub?: Hub } = {};
      const bus = new RedisBus(env.url, {
        node: newId(),
        prefix,
        deliver: (t, e) => late.hub?.deliver(t, e),
      });
      await Promise.all([store.ready(), other.ready(), bus.ready()]);
      const hub = late.hub = new Hub({ store, bus, node: "n1" });
      const open = () => {
        const c = new FakeConnection();
        c.handler = slash.open(hub, c, new URL("ws://localhost/"));
        return c;
      };
      try {
        const ch = newChannelId();
        const a = open(), b = open();
        const bid = newId();
        a.handler.text(`/descp {"id":"${newId()}","name":"a"}`);
        b.handler.text(`/descp {"id":"${bid}","name":"b"}`);
        if (subscribed) a.handler.text(`/join ${ch}`);
        await until(() => a.messages.length === (subscribed ? 2 : 1), 5000, "a ready");
        await until(() => b.messages.length === 1, 5000, "b described");
        // Right after b's join takes effect, a member on another node speaks.
        const join = store.join.bind(store);
        store.join = async (id, c, key) => {
          const r = await join(id, c, key);
          if (id === bid) {
            await other.publish(
              ch,
              `{"type":"pubmsg","id":"${newId()}","ts":1,"from":"x","channel":"${ch}","text":"gap"`,
              "x",
            );
          }
          return r;
        };
        b.handler.text(`/join ${ch}`);
        await until(() => b.messages.some((m) => m.type === "pubmsg"), 5000, "the message");
        const [reply, event] = b.messages.slice(1);
        assert.equal(reply.type, "ok", JSON.stringify(reply));
        const stream = (reply.data as { stream: { seq: number } }).stream;
        assert.equal(stream.seq, 0, "the reply's position is before the message");
        assert.deepEqual([event.type, event.seq, event.text], ["pubmsg", 1, "gap"]);
        assert.equal(b.messages.filter((m) => m.type === "pubmsg").length, 1, "once");
      } finally {
        await hub.shutdown();
        await other.close();
        await deleteKeys(env.url, prefix);
      }
    },
  });
}
