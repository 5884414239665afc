/**
 * A second wire protocol added without touching the hub: a tiny JSON-RPC-like
 * front-end, defined here in the test, served next to the slash protocol on
 * a real port. Its peers share identity and channels with slash peers.
 */
import assert from "node:assert/strict";
import { COMMANDS, MAX_QUEUED_FRAMES, newChannelId, newId } from "../../protocol/mod.ts";
import { serve } from "../../server/deno.ts";
import type { Frontend, SocketHandler } from "../../server/frontends/frontend.ts";
import { slash } from "../../server/frontends/slash.ts";
import { type Connection, Hub, Ordered, Refusal, type Session } from "../../server/hub/mod.ts";
import { MemoryStore } from "../../server/store/memory.ts";

/** `{"id":1,"method":"join","params":{…}}` → `{"id":1,"result":…}`; events as `{"event":…}`. */
const rpc: Frontend = {
  path: "/rpc",
  open(hub: Hub, conn: Connection): SocketHandler {
    // Events from the core are JSON objects: wrap each without parsing it.
    const events: Connection = {
      send: (text) => conn.send(`{"event":${text}}`),
      close: (code, reason) => conn.close(code, reason),
      get bufferedAmount() {
        return conn.bufferedAmount;
      },
      remoteAddress: conn.remoteAddress,
    };
    const session: Session = hub.open(events);
    const run = (frame: string): Promise<void> | undefined => {
      let call: { id: number; method: string; params: Record<string, unknown> };
      try {
        call = JSON.parse(frame);
      } catch {
        conn.send(`{"id":null,"error":{"code":-32700,"message":"parse error"}}`);
        return;
      }
      const handler = (COMMANDS as readonly string[]).includes(call.method)
        ? hub.commands[call.method as "join"] as (s: Session, a: unknown) => unknown
        : undefined;
      if (handler === undefined) {
        conn.send(JSON.stringify({ id: call.id, error: { code: -32601, message: "no method" } }));
        return;
      }
      return Promise.resolve()
        .then(() => handler(session, call.params))
        .then(
          (result) => conn.send(JSON.stringify({ id: call.id, result })),
          (e) =>
            conn.send(JSON.stringify({
              id: call.id,
              error: e instanceof Refusal
                ? { code: e.code, message: e.message }
                : { code: -32603, message: String(e) },
            })),
        );
    };
    const frames = new Ordered(run, MAX_QUEUED_FRAMES);
    return {
      text: (frame) => void frames.push(frame),
      binary: () => conn.close(1003, "text only"),
      closed: () => hub.closed(session),
    };
  },
};

/** A WebSocket that collects every JSON object it receives. */
async function socket(url: string) {
  const ws = new WebSocket(url);
  const got: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  ws.onmessage = (e) => {
    for (const line of String(e.data).split("\n")) got.push(JSON.parse(line));
    waiters.splice(0).forEach((w) => w());
  };
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  const until = async (what: string, ok: (m: Record<string, unknown>) => boolean) => {
    const deadline = Date.now() + 5000;
    while (!got.some(ok)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 100);
      });
    }
    return got.find(ok)!;
  };
  return { ws, got, until };
}

Deno.test("a test-only front-end shares identity and channels with slash peers", async () => {
  const hub = new Hub({ store: new MemoryStore({ maxChannels: 100, retentionMs: 60_000 }) });
  const listener = await serve(hub, [slash, rpc], {
    port: 0,
    host: "127.0.0.1",
    maxPayload: 1 << 20,
    maxBuffered: 1 << 20,
  });
  const base = `ws://127.0.0.1:${listener.port}`;
  const channel = newChannelId();
  const ann = newId(), bob = newId();
  const a = await socket(`${base}/`);
  const b = await socket(`${base}/rpc`);
  try {
    a.ws.send(`/descp {"id":"${ann}","name":"Ann"}`);
    await a.until("descp", (m) => m.cmd === "descp");
    a.ws.send(`/join ${channel}`);
    await a.until("join", (m) => m.cmd === "join");

    b.ws.send(JSON.stringify({
      id: 1,
      method: "descp",
      params: { desc: { id: bob, name: "Bob", meta: {} } },
    }));
    const described = await b.until("descp result", (m) => m.id === 1);
    assert.equal((described.result as { peer: { name: string } }).peer.name, "Bob");
    b.ws.send(JSON.stringify({ id: 2, method: "join", params: { channel } }));
    const joined = await b.until("join result", (m) => m.id === 2);
    assert.equal((joined.result as { total: number }).total, 2);
    // The slash peer sees the rpc peer join, as any member would.
    const join = await a.until("join event", (m) => m.type === "join");
    assert.deepEqual(join.peer, { id: bob, name: "Bob" });

    // Identity is shared: the rpc peer's id is taken for a slash client.
    const c = await socket(`${base}/`);
    c.ws.send(`/descp {"id":"${bob}","name":"Impostor"}`);
    const taken = await c.until("433", (m) => m.type === "error");
    assert.equal(taken.code, 433);
    c.ws.close();

    // Danmaku both ways, each in its own protocol's shape.
    a.ws.send(`/pubmsg ${channel} hello from slash`);
    const ev = await b.until("pubmsg event", (m) => m.event !== undefined);
    const { type, from, text } = ev.event as Record<string, unknown>;
    assert.deepEqual({ type, from, text }, { type: "pubmsg", from: ann, text: "hello from slash" });
    b.ws.send(
      JSON.stringify({ id: 3, method: "pubmsg", params: { channel, text: "hi from rpc" } }),
    );
    await b.until("pubmsg result", (m) => m.id === 3 && m.result !== undefined);
    const back = await a.until("pubmsg", (m) => m.type === "pubmsg");
    assert.equal(back.text, "hi from rpc");
    assert.equal(back.from, bob);

    // Errors are the core's refusals, in this protocol's shape.
    b.ws.send(JSON.stringify({ id: 4, method: "quit", params: { channel: newChannelId() } }));
    const refused = await b.until("quit error", (m) => m.id === 4);
    assert.equal((refused.error as { code: number }).code, 403);
  } finally {
    a.ws.close();
    b.ws.close();
    await hub.shutdown();
    await listener.close();
  }
});
