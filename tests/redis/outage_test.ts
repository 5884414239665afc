/**
 * Redis going away and coming back (PROTOCOL.md, "HTTP next to the socket" and
 * "Nothing half-done"): the node keeps running, `/healthz` says 503, commands
 * that need the store get an error reply (503 `ERR_UNAVAILABLE`) on a socket
 * that stays open, and all is well again once Redis answers. The test runs its
 * own throwaway `redis-server` so it can kill it.
 */
import assert from "node:assert/strict";
import {
  connect,
  expectError,
  expectOk,
  type Msg,
  newChannel,
  newId,
  peer,
} from "../support/client.ts";
import { assertRedis, redisTests } from "../support/redis.ts";
import { bbtest, startServer } from "../support/server.ts";
import { delay, until } from "../support/wait.ts";

// The shared Redis is not used, but the rule is the same: in CI these tests must run.
const env = await redisTests();
const HAVE_REDIS_SERVER = (() => {
  try {
    return new Deno.Command("redis-server", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();
/** Skipped like the other Redis tests, or when `redis-server` is missing (outside CI). */
const ignore = env.ignore || (!HAVE_REDIS_SERVER && !env.required);
if (!HAVE_REDIS_SERVER && !env.ignore) {
  console.log(
    `Redis outage tests ${
      env.required ? "will fail" : "skipped"
    }: no redis-server binary on the PATH.`,
  );
}

/** A port nobody listens on right now. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Whether a Redis server answers PING on `port`. */
async function pong(port: number): Promise<boolean> {
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("PING\r\n"));
    const buf = new Uint8Array(16);
    const n = await conn.read(buf);
    return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("+PONG");
  } catch {
    return false;
  } finally {
    conn?.close();
  }
}

/** A throwaway Redis without persistence, killed with SIGKILL by {@linkcode RedisProcess.kill}. */
class RedisProcess {
  #child: Deno.ChildProcess;
  #status: Promise<Deno.CommandStatus>;
  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#status = child.status;
  }
  /** Starts `redis-server` on `port`; with `dir`, it loads (and `save()` writes) `dir/dump.rdb`. */
  static async start(port: number, dir?: string): Promise<RedisProcess> {
    const args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
    ];
    if (dir !== undefined) args.push("--dir", dir, "--dbfilename", "dump.rdb");
    const child = new Deno.Command("redis-server", {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const r = new RedisProcess(child);
    try {
      await until(() => pong(port), 5000, `redis-server on port ${port}`);
    } catch (e) {
      await r.kill();
      throw e;
    }
    return r;
  }
  /** SIGKILL, and wait for the process to be gone. */
  async kill(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* already gone */ }
    await this.#status;
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}

/** Sends one inline command to the Redis on `port`; returns the first line of the answer. */
async function redisCommand(port: number, command: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(command + "\r\n"));
    const buf = new Uint8Array(256);
    const n = await conn.read(buf);
    return n === null ? "" : new TextDecoder().decode(buf.subarray(0, n)).split("\r\n")[0];
  } finally {
    conn.close();
  }
}

/** `GET /healthz`'s status (0 when the server does not answer). */
async function health(httpUrl: string): Promise<number> {
  try {
    const r = await fetch(httpUrl + "/healthz");
    await r.body?.cancel();
    return r.status;
  } catch {
    return 0;
  }
}

bbtest(
  "Redis down: /healthz 503, store commands get 503 on an open socket; back: all works again",
  async (rt) => {
    assertRedis(env);
    assert.ok(HAVE_REDIS_SERVER, "redis-server is needed to start a throwaway Redis");
    const port = freePort();
    const redisUrl = `redis://127.0.0.1:${port}`;
    let redis = await RedisProcess.start(port);
    try {
      await using server = await startServer({
        runtime: rt,
        args: ["--redis", redisUrl, "--redis-prefix", "outage:", "--grace-ms", "1500"],
      });
      assert.equal(await health(server.httpUrl), 200);
      await using a = await peer(server.url, { name: "a" });
      await using b = await peer(server.url, { name: "b" });
      const ch = newChannel();
      await a.ok(`/join ${ch}`);
      await b.ok(`/join ${ch}`);
      await a.event("join");

      // ---- Redis goes away.
      await redis.kill();
      await until(async () => (await health(server.httpUrl)) === 503, 5000, "/healthz 503");

      // Commands that need the store: an error reply 503, in order, the socket stays open.
      const fresh = newChannel();
      a.send(`/join ${fresh}`);
      a.send(`/whois ${b.id}`);
      a.send(`/whois ${ch}`);
      a.send(`/peers ${ch}`);
      a.send(`/away gone fishing`);
      for (const cmd of ["join", "whois", "whois", "peers", "away"]) {
        expectError(await a.reply(5000), 503, cmd, `/${cmd} while Redis is down`);
      }
      // A new peer cannot be described yet; it may retry on the same socket.
      await using late = await connect(server.url, "late");
      const lateId = newId();
      expectError(
        await late.cmd(`/descp ${JSON.stringify({ id: lateId, name: "late" })}`, 5000),
        503,
        "descp",
        "/descp while Redis is down",
      );
      await delay(300);
      for (const c of [a, b, late]) {
        assert.equal(c.ws.readyState, WebSocket.OPEN, `${c.name || "late"}: socket still open`);
      }
      assert.equal(await health(server.httpUrl), 503, "the node is still up and still unhealthy");

      // ---- Redis comes back (empty: no persistence) on the same port.
      redis = await RedisProcess.start(port);
      const took = await until(
        async () => (await health(server.httpUrl)) === 200,
        6000,
        "/healthz 200 after Redis is back",
      );
      assert.ok(took < 6000);

      // The retried /descp succeeds on the same socket, and store commands work again.
      const d = expectOk(
        await late.cmd(`/descp ${JSON.stringify({ id: lateId, name: "late" })}`, 5000),
        "descp",
      );
      assert.equal(d.peer.id, lateId);
      assert.deepEqual(d.channels, []);
      const ch2 = newChannel();
      const j = expectOk(await late.cmd(`/join ${ch2} k`), "join");
      assert.equal(j.created, true);
      assert.equal(j.op, true);
      assert.deepEqual(j.members.map((m: { id: string }) => m.id), [lateId]);
      const w = expectOk(await late.cmd(`/whois ${ch2}`), "whois");
      assert.deepEqual(w.operators, [lateId]);
      // A peer described before the outage still gets answers from the store.
      const wl = expectOk(await a.cmd(`/whois ${lateId}`), "whois");
      assert.equal(wl.online, true);
      assert.deepEqual(wl.channels, [], "a keyed channel of someone else is not shown");
      // And a brand-new peer can join the channel with its key: the node works as before.
      await using c = await peer(server.url, { name: "c" });
      await c.fail(`/join ${ch2}`, 475);
      await c.ok(`/join ${ch2} k`);
      const e = await late.event("join");
      assert.equal(e.peer.id, c.id);
      await c.ok(`/pubmsg ${ch2} after the outage`);
      assert.equal((await late.event("pubmsg")).text, "after the outage");
    } finally {
      await redis.kill();
    }
  },
  { ignore },
);

bbtest(
  "a short Redis outage under two nodes: peers keep their channels, messages cross nodes again",
  async (rt) => {
    assertRedis(env);
    assert.ok(HAVE_REDIS_SERVER, "redis-server is needed to start a throwaway Redis");
    const port = freePort();
    const dir = await Deno.makeTempDir({ prefix: "signaller-outage-" });
    const redisUrl = `redis://127.0.0.1:${port}`;
    let redis = await RedisProcess.start(port, dir);
    try {
      const args = ["--redis", redisUrl, "--redis-prefix", "outage:", "--grace-ms", "1500"];
      await using n1 = await startServer({ runtime: rt, args });
      await using n2 = await startServer({ runtime: rt, args });
      await using a = await peer(n1.url, { name: "a" });
      await using a2 = await peer(n1.url, { name: "a2" });
      await using b = await peer(n2.url, { name: "b" });
      const ch = newChannel();
      await a.ok(`/join ${ch}`);
      await a2.ok(`/join ${ch}`);
      await b.ok(`/join ${ch}`);
      await a.ok(`/pubmsg ${ch} before`);
      assert.equal((await b.event("pubmsg")).text, "before");
      assert.equal((await a2.event("pubmsg")).text, "before");
      for (const c of [a, a2, b]) c.clearEvents();

      // ---- Redis goes away, its data saved (a blip, not a loss).
      assert.equal(await redisCommand(port, "SAVE"), "+OK");
      await redis.kill();
      for (const n of [n1, n2]) {
        await until(async () => (await health(n.httpUrl)) === 503, 5000, "/healthz 503");
      }
      // A pubmsg to a channel with a member on the other node cannot be delivered now.
      const during = await a.cmd(`/pubmsg ${ch} during the outage`, 5000);
      expectError(await b.cmd(`/privmsg ${a.id} hello?`, 5000), 503, "privmsg");

      // ---- Redis comes back with its data.
      redis = await RedisProcess.start(port, dir);
      for (const n of [n1, n2]) {
        await until(async () => (await health(n.httpUrl)) === 200, 6000, "/healthz 200");
      }
      // The bus re-subscribed: channel and peer traffic crosses nodes again, once. Until it
      // has, a probe may be lost: send new ones until one arrives.
      let probes = 0;
      await until(
        async () => {
          const text = `probe ${probes++}`;
          await a.ok(`/pubmsg ${ch} ${text}`);
          return await b.event("pubmsg", { timeout: 300, where: (e) => e.text === text })
            .then(() => true, () => false);
        },
        5000,
        "pubmsg from node 1 to node 2 after the outage",
      );
      await a.ok(`/pubmsg ${ch} after`);
      const after = (e: Msg) => e.text === "after";
      for (const c of [b, a2]) await c.event("pubmsg", { where: after });
      // Quiet period: a duplicate would follow closely.
      await delay(300);
      for (const c of [b, a2]) await c.noEvent("pubmsg", 0, after);
      await b.ok(`/privmsg ${a.id} hello again`);
      assert.equal((await a.event("privmsg")).text, "hello again");
      await b.ok(`/pubmsg ${ch} from node 2`);
      assert.equal((await a.event("pubmsg")).text, "from node 2");
      const w = expectOk(await b.cmd(`/whois ${ch}`), "whois");
      assert.deepEqual(
        w.members.map((m: { id: string; online: boolean }) => [m.id, m.online]),
        [[a.id, true], [a2.id, true], [b.id, true]],
        "nobody was declared gone by the blip",
      );
      assert.deepEqual(w.operators, [a.id]);
      for (const c of [a, a2, b]) await c.noEvent("quit", 0);

      // Nothing half-done: the pubmsg sent during the outage was either refused (503)
      // or delivered to every member, including the one on the other node.
      if (during.type === "ok") {
        const got = b.log.filter((m) => m.type === "pubmsg" && m.text === "during the outage");
        assert.equal(
          got.length,
          1,
          "/pubmsg during the outage was acknowledged (ok) but never reached the member on " +
            "the other node: it must fail with 503 instead",
        );
      } else {
        expectError(during, 503, "pubmsg", "/pubmsg during the outage");
        const leaked = a2.log.filter((m) => m.type === "pubmsg" && m.text === "during the outage");
        assert.deepEqual(leaked, [], "a refused pubmsg reaches no one");
      }
    } finally {
      await redis.kill();
      await Deno.remove(dir, { recursive: true });
    }
  },
  { ignore },
);
