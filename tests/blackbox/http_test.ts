/** HTTP next to the socket (/healthz, /metrics) and graceful shutdown on SIGTERM. */
import assert from "node:assert/strict";
import { assertTs } from "../support/asserts.ts";
import { connect, newChannel, peer } from "../support/client.ts";
import { bbtest, startServer } from "../support/server.ts";
import { within } from "../support/wait.ts";

interface Sample {
  name: string;
  labels: string;
  value: number;
}

/** Parses Prometheus text: samples and `# TYPE` declarations. */
function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line.startsWith("# TYPE ")) {
      const [, , name, type] = line.split(" ");
      types.set(name, type);
    } else if (line.length > 0 && !line.startsWith("#")) {
      const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/);
      assert.ok(m, `not a Prometheus sample line: ${line}`);
      samples.push({ name: m[1], labels: m[2] ?? "", value: Number(m[3]) });
    }
  }
  return { samples, types };
}

/** The single unlabelled gauge whose name matches `re`. */
function gauge(m: ReturnType<typeof parseMetrics>, re: RegExp): number {
  const names = [...m.types].filter(([n, t]) => t === "gauge" && re.test(n)).map(([n]) => n);
  assert.ok(names.length >= 1, `no gauge matching ${re} in ${[...m.types.keys()].join(", ")}`);
  const s = m.samples.find((x) => x.name === names[0]);
  assert.ok(s, `no sample for ${names[0]}`);
  return s.value;
}

bbtest(
  "GET /healthz is 200 ok; GET /metrics has connection, peer, channel and memory gauges and message counters",
  async (rt) => {
    await using s = await startServer({ runtime: rt });
    const h = await fetch(`${s.httpUrl}/healthz`);
    assert.equal(h.status, 200);
    assert.equal((await h.text()).trim(), "ok");

    await using a = await peer(s.url);
    await using b = await peer(s.url);
    await using _idle = await connect(s.url);
    const ch = newChannel();
    await a.ok(`/join ${ch}`);
    await b.ok(`/join ${ch}`);
    await a.ok(`/pubmsg ${ch} counted`);
    await b.event("pubmsg");
    await a.fail(`/whois ${"0".repeat(24)}`, 401);

    const r = await fetch(`${s.httpUrl}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type") ?? "", /^text\/plain/);
    const m = parseMetrics(await r.text());
    assert.equal(gauge(m, /connection/), 3, "connections: 3 sockets open");
    assert.equal(gauge(m, /peer/), 2, "peers: 2 described");
    assert.equal(gauge(m, /channel/), 1, "channels: 1");
    const counters = [...m.types].filter(([n, t]) => t === "counter" && /message/.test(n));
    assert.ok(counters.length >= 1, "a message counter");
    const pub = m.samples.filter((x) =>
      counters.some(([n]) => x.name === n || x.name === n + "_total") && /pubmsg/.test(x.labels)
    );
    assert.ok(pub.some((x) => x.value >= 1), `pubmsg counted: ${JSON.stringify(pub)}`);
    // Errors by code.
    const errs = [...m.types].filter(([n, t]) => t === "counter" && /error/.test(n));
    assert.ok(errs.length >= 1, "an error counter");
    assert.ok(
      m.samples.some((x) =>
        errs.some(([n]) => x.name === n || x.name === n + "_total") && /401/.test(x.labels) &&
        x.value >= 1
      ),
      "the 401 counted by code",
    );
    // Fan-out and store latency histograms.
    const histograms = [...m.types].filter(([, t]) => t === "histogram").map(([n]) => n);
    assert.ok(histograms.some((n) => /fan/.test(n)), `fan-out histogram in ${histograms}`);
    assert.ok(histograms.some((n) => /store/.test(n)), `store histogram in ${histograms}`);
    // The process's memory: resident, and the engine's heap.
    for (const name of ["resident", "heap_total", "heap_used", "external"]) {
      assert.ok(gauge(m, new RegExp(`memory_${name}_bytes`)) > 0, `memory ${name} above 0`);
    }
    for (const x of m.samples) assert.ok(!Number.isNaN(x.value), `${x.name} is a number`);
  },
);

bbtest("GET / serves the demo page as HTML", async (rt) => {
  await using s = await startServer({ runtime: rt });
  const r = await fetch(`${s.httpUrl}/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /^text\/html/);
  assert.match(await r.text(), /<html|<!doctype html/i);
});

bbtest(
  "SIGTERM: every described client gets a notice, then every socket closes 1001; exit 0",
  async (rt) => {
    const s = await startServer({ runtime: rt });
    await using a = await peer(s.url);
    await using b = await peer(s.url);
    await using idle = await connect(s.url);
    await a.ok(`/join ${newChannel()}`);
    const code = await s.stop();
    assert.equal(code, 0, `exit code ${code}\n${s.logs().join("\n")}`);
    for (const c of [a, b]) {
      const closed = await within(c.closed, 2000, "close");
      assert.equal(closed.code, 1001);
      const notices = c.log.filter((x) => x.type === "notice");
      assert.equal(notices.length, 1, "one notice before the close");
      assert.equal(typeof notices[0].text, "string");
      assert.ok(notices[0].text.length > 0);
      assertTs(notices[0].ts);
    }
    assert.equal((await within(idle.closed, 2000, "close")).code, 1001);
    await s[Symbol.asyncDispose]();
  },
);

bbtest("SIGINT shuts down like SIGTERM: notice, close 1001, exit 0", async (rt) => {
  const s = await startServer({ runtime: rt });
  await using a = await peer(s.url);
  Deno.kill(s.pid, "SIGINT");
  const closed = await within(a.closed, 5000, "close");
  assert.equal(closed.code, 1001);
  assert.equal(a.log.filter((x) => x.type === "notice").length, 1);
  assert.equal(await s.stop(), 0);
});
