/**
 * Channel events in the order they were made: bursts sent back to back (which
 * the server handles in one turn and, on Bun, publishes as one frame per
 * sender), several senders at once, a kick or a join amid a burst, and
 * direct sends after a channel event.
 */
import assert from "node:assert/strict";
import { group, type Msg, newChannel, peer, type TestClient } from "../support/client.ts";
import { delay } from "../support/wait.ts";
import { bbtest, sharedServer } from "../support/server.ts";

const server = await sharedServer();

/** `n` described peers, each a member of one fresh channel, join events drained. */
async function room(url: string, n: number) {
  const g = group();
  const ch = newChannel();
  for (let i = 0; i < n; i++) {
    const p = await peer(url, { name: `p${i}` });
    g.push(p);
    await p.ok(`/join ${ch}`);
  }
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) await g[i].event("join");
  return { g, ch };
}

/** Sends every frame at once, then waits for all their replies, in order. */
async function burst(c: TestClient, frames: string[]): Promise<Msg[]> {
  for (const f of frames) c.send(f);
  const replies: Msg[] = [];
  for (const _ of frames) replies.push(await c.reply());
  return replies;
}

/** The texts of the `pubmsg` events in `c`'s log, in arrival order. */
function texts(c: TestClient): string[] {
  return c.log.filter((m) => m.type === "pubmsg").map((m) => m.text);
}

/** `/pubmsg` frames with texts `prefix0`, `prefix1`, … */
function pubmsgs(ch: string, prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `/pubmsg ${ch} ${prefix}${i}`);
}

bbtest("a burst of pubmsgs reaches every member in order, and never the sender", async (rt) => {
  const { g, ch } = await room(server(rt).url, 3);
  await using _ = g;
  const [a, b, c] = g;
  const replies = await burst(a, pubmsgs(ch, "m", 10));
  assert.ok(replies.every((r) => r.type === "ok"));
  const sent = pubmsgs(ch, "m", 10).map((f) => f.split(" ")[2]);
  for (const x of [b, c]) {
    await x.events("pubmsg", 10);
    assert.deepEqual(texts(x), sent);
  }
  await a.noEvent("pubmsg", 50);
});

bbtest("two senders at once: every member gets the same order, none its own", async (rt) => {
  const { g, ch } = await room(server(rt).url, 4);
  await using _ = g;
  const [a, b, c, d] = g;
  const fromA = pubmsgs(ch, "a", 10), fromB = pubmsgs(ch, "b", 10);
  for (let i = 0; i < 10; i++) {
    a.send(fromA[i]);
    b.send(fromB[i]);
  }
  for (const x of [a, b]) for (let i = 0; i < 10; i++) assert.equal((await x.reply()).type, "ok");
  for (const x of [c, d]) await x.events("pubmsg", 20);
  await a.events("pubmsg", 10);
  await b.events("pubmsg", 10);
  const order = texts(c);
  assert.deepEqual(texts(d), order, "both observers saw one order");
  const of = (p: string) => order.filter((t) => t.startsWith(p));
  assert.deepEqual(of("a"), fromA.map((f) => f.split(" ")[2]), "a's own order kept");
  assert.deepEqual(of("b"), fromB.map((f) => f.split(" ")[2]), "b's own order kept");
  assert.deepEqual(texts(a), of("b"), "a gets b's, not its own");
  assert.deepEqual(texts(b), of("a"), "b gets a's, not its own");
});

bbtest(
  "a kick amid a burst: the kicked peer gets what came before, its kick, nothing after",
  async (rt) => {
    const { g, ch } = await room(server(rt).url, 3);
    await using _ = g;
    const [op, b, c] = g;
    const replies = await burst(op, [
      ...pubmsgs(ch, "before", 5),
      `/kick ${b.id} ${ch}`,
      ...pubmsgs(ch, "after", 5),
    ]);
    assert.ok(replies.every((r) => r.type === "ok"));
    await c.events("pubmsg", 10);
    await c.event("kick");
    const before = pubmsgs(ch, "before", 5).map((f) => f.split(" ")[2]);
    const after = pubmsgs(ch, "after", 5).map((f) => f.split(" ")[2]);
    const seen = (x: TestClient) =>
      x.log.filter((m) => m.type === "pubmsg" || m.type === "kick")
        .map((m) => m.type === "kick" ? "kick" : m.text);
    assert.deepEqual(seen(c), [...before, "kick", ...after]);
    await b.event("kick");
    await b.noEvent("pubmsg", 100, (m) => m.text.startsWith("after"));
    assert.deepEqual(seen(b), [...before, "kick"]);
  },
);

bbtest(
  "a join amid a burst: the joiner gets the burst from one message on, in order, at least what members see after its join",
  async (rt) => {
    const url = server(rt).url;
    const { g, ch } = await room(url, 2);
    await using _ = g;
    const [a, y] = g;
    await using j = await peer(url, { name: "joiner" });
    const frames = pubmsgs(ch, "m", 10);
    for (const f of frames.slice(0, 5)) a.send(f);
    j.send(`/join ${ch}`);
    for (const f of frames.slice(5)) a.send(f);
    for (const _ of frames) assert.equal((await a.reply()).type, "ok");
    assert.equal((await j.reply()).type, "ok");
    await y.events("pubmsg", 10);
    await y.event("join");
    const at = y.log.findIndex((m) => m.type === "join" && m.peer.id === j.id);
    const afterJoin = y.log.slice(at).filter((m) => m.type === "pubmsg").map((m) => m.text);
    // Messages published while the join took effect may reach the joiner before members see
    // its join event (PROTOCOL.md, `/join`): what it gets is a suffix of the burst, no gap.
    if (afterJoin.length > 0) await j.event("pubmsg", { where: (m) => m.text === "m9" });
    await delay(100); // and nothing more comes
    const all = frames.map((f) => f.split(" ")[2]);
    const got = texts(j);
    assert.deepEqual(got, all.slice(all.length - got.length), "a suffix of the burst, in order");
    assert.ok(got.length >= afterJoin.length, "at least what members saw after the join");
  },
);

bbtest("a direct send after a channel event arrives after it", async (rt) => {
  const url = server(rt).url;
  const { g, ch } = await room(url, 3);
  await using _ = g;
  const [a, b] = g;
  await using outsider = await peer(url, { name: "outsider" });
  await burst(a, [`/pubmsg ${ch} first`, `/privmsg ${b.id} second`, `/ban ${outsider.id} ${ch}`]);
  await b.event("pubmsg");
  await b.event("privmsg");
  await b.event("ban");
  assert.deepEqual(
    b.log.filter((m) => ["pubmsg", "privmsg", "ban"].includes(m.type)).map((m) => m.type),
    ["pubmsg", "privmsg", "ban"],
  );
  // The operator is told of its ban like every member, before its reply.
  await a.event("ban");
  const last = a.log.slice(-2).map((m) => m.type === "ok" ? `ok ${m.cmd}` : m.type);
  assert.deepEqual(last, ["ban", "ok ban"]);
});
