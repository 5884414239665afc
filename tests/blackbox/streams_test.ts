/**
 * Message streams (PROTOCOL.md, "Message streams and recovery"): seq per
 * channel and per inbox, `/privmsg` kept for a peer in its grace, and the
 * replay of what a resumed peer missed.
 */
import assert from "node:assert/strict";
import { connect, group, newChannel, newId, peer, type TestClient } from "../support/client.ts";
import { RawClient } from "../support/raw_ws.ts";
import { bbtest, type Runtime, sharedServer, startServer } from "../support/server.ts";
import { until } from "../support/wait.ts";

const server = await sharedServer({ args: ["--grace-ms", "20000"] });

/** A member whose TCP connection is cut without a close frame; its positions. */
async function cutMember(url: string, ch: string) {
  const raw = await RawClient.connect(url);
  const id = newId();
  await raw.sendText(`/descp ${JSON.stringify({ id, name: "flaky" })}`);
  const d = await raw.reply();
  assert.equal(d.type, "ok", JSON.stringify(d));
  await raw.sendText(`/join ${ch}`);
  const j = await raw.reply();
  assert.equal(j.type, "ok", JSON.stringify(j));
  raw.close();
  return { id, resume: d.data.resume, inbox: d.data.inbox, stream: j.data.stream };
}

/** Waits until `who` sees `id` in its grace (online: false). */
async function inGrace(who: TestClient, id: string): Promise<void> {
  await until(
    async () => (await who.ok(`/whois ${id}`)).online === false,
    5000,
    `${id} in its grace`,
  );
}

/** Resumes `id` with `since`, returns the reply data and the messages after it, in order. */
async function resume(url: string, id: string, token: string, since: unknown) {
  const c = await connect(url, "resumed");
  const data = await c.ok(`/descp ${JSON.stringify({ id, name: "flaky", resume: token, since })}`);
  return { c, data };
}

/** The messages `c` received after its reply to `/descp`, of the given types. */
function after(c: TestClient, types: string[]) {
  const i = c.log.findIndex((m) => m.type === "ok" && m.cmd === "descp");
  return c.log.slice(i + 1).filter((m) => types.includes(m.type));
}

bbtest("a resume with since replays what the peer missed, in order, once", async (rt) => {
  const url = server(rt).url;
  await using b = await peer(url, { name: "b" });
  const ch = newChannel();
  await b.ok(`/join ${ch}`);
  const a = await cutMember(url, ch);
  assert.equal(a.inbox.seq, 0);
  assert.equal(a.stream.seq, 0);
  await inGrace(b, a.id);

  const sent = [];
  for (const text of ["one", "two", "three"]) sent.push(await b.ok(`/pubmsg ${ch} ${text}`));
  assert.deepEqual(sent.map((r) => r.seq), [1, 2, 3]);
  for (const text of ["offer", "candidate"]) {
    const r = await b.ok(`/privmsg ${a.id} ${text}`);
    assert.equal(r.queued, true, "kept in the inbox of a peer in its grace");
    assert.equal(r.away, undefined);
  }

  const { c, data } = await resume(url, a.id, a.resume, {
    inbox: a.inbox,
    channels: { [ch]: a.stream },
  });
  await using _c = c;
  assert.deepEqual(data.recovered, { inbox: true, channels: { [ch]: true } });
  const pub = await c.events("pubmsg", 3);
  assert.deepEqual(pub.map((e) => [e.text, e.seq]), [["one", 1], ["two", 2], ["three", 3]]);
  const priv = await c.events("privmsg", 2);
  assert.deepEqual(priv.map((e) => [e.text, e.seq]), [["offer", 1], ["candidate", 2]]);
  // They came right after the reply, before anything newer.
  assert.equal(after(c, ["pubmsg", "privmsg"]).length, 5);

  // Live messages continue at the next seq, nothing twice.
  await b.ok(`/pubmsg ${ch} four`);
  const live = await c.event("pubmsg");
  assert.deepEqual([live.text, live.seq], ["four", 4]);
  await b.ok(`/privmsg ${a.id} answer`);
  assert.equal((await c.event("privmsg")).seq, 3);
  await c.noEvent("pubmsg", 100);
  assert.deepEqual(c.pending(), []);
});

bbtest("a resume without since replays nothing; a wrong epoch gets false", async (rt) => {
  const url = server(rt).url;
  await using b = await peer(url, { name: "b" });
  const ch = newChannel();
  await b.ok(`/join ${ch}`);
  const a = await cutMember(url, ch);
  await inGrace(b, a.id);
  await b.ok(`/pubmsg ${ch} missed`);

  const first = await resume(url, a.id, a.resume, {
    inbox: { epoch: "not-the-epoch", seq: 0 },
    channels: { [ch]: { epoch: a.stream.epoch, seq: 0 } },
  });
  await using _f = first.c;
  assert.deepEqual(first.data.recovered, { inbox: false, channels: { [ch]: true } });
  assert.equal((await first.c.event("pubmsg")).text, "missed");

  // Without since: the plain resume of before, nothing replayed, no `recovered`.
  const plain = await resume(url, a.id, first.data.resume, undefined);
  await using _p = plain.c;
  assert.equal(plain.data.recovered, undefined);
  await plain.c.noEvent("pubmsg", 150);
});

bbtest("--history 5: a gap of 8 is not in history, so nothing is replayed", async (rt: Runtime) => {
  await using srv = await startServer({ runtime: rt, args: ["--history", "5"] });
  await using g = group(await peer(srv.url, { name: "b" }));
  const [b] = g;
  const ch = newChannel();
  await b.ok(`/join ${ch}`);
  const a = await cutMember(srv.url, ch);
  await inGrace(b, a.id);
  for (let i = 1; i <= 8; i++) await b.ok(`/pubmsg ${ch} m${i}`);
  await b.ok(`/privmsg ${a.id} kept`);

  const { c, data } = await resume(srv.url, a.id, a.resume, {
    inbox: a.inbox,
    channels: { [ch]: a.stream },
  });
  await using _c = c;
  assert.deepEqual(data.recovered, { inbox: true, channels: { [ch]: false } });
  assert.equal((await c.event("privmsg")).text, "kept");
  await c.noEvent("pubmsg", 150);
});

bbtest("--history 0: no streams — no seq, /privmsg to a peer in its grace gets 401", async (rt) => {
  await using srv = await startServer({ runtime: rt, args: ["--history", "0"] });
  await using b = await peer(srv.url, { name: "b" });
  const ch = newChannel();
  const j = await b.ok(`/join ${ch}`);
  assert.equal(j.stream, undefined);
  const a = await cutMember(srv.url, ch);
  assert.equal(a.inbox, undefined);
  await inGrace(b, a.id);
  await b.fail(`/privmsg ${a.id} stale offer`, 401);
  const r = await b.ok(`/pubmsg ${ch} hi`);
  assert.equal(r.seq, undefined);
});

bbtest("/descp with a malformed since gets 432", async (rt) => {
  await using c = await connect(server(rt).url);
  await c.fail(
    `/descp ${JSON.stringify({ id: newId(), name: "x", since: { inbox: { epoch: 1 } } })}`,
    432,
  );
});
