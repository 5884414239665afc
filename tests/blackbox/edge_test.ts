/**
 * The edge: half-sent requests (--header-timeout-ms), frames announced far over
 * the limit (1009 before the payload is read), connection limits per address
 * and in all (429, 503), --trust-proxy, and the WebSocket framing rules.
 */
import assert from "node:assert/strict";
import { newId, peer } from "../support/client.ts";
import { RawClient } from "../support/raw_ws.ts";
import { bbtest, type ServerHandle, startServer } from "../support/server.ts";
import { until, within } from "../support/wait.ts";

/** Opens a raw TCP connection that sends the start of an upgrade request and nothing more. */
async function halfOpen(port: number): Promise<{ conn: Deno.Conn; ended: Promise<void> }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    new TextEncoder().encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"),
  );
  const ended = (async () => {
    const buf = new Uint8Array(1024);
    try {
      while ((await conn.read(buf)) !== null) { /* whatever the server says before closing */ }
    } catch { /* reset: closed as well */ }
  })();
  return { conn, ended };
}

/** The handshake status line of an upgrade `RawClient.connect` could not complete. */
async function refusal(url: string, headers?: Record<string, string>): Promise<string> {
  try {
    const c = await RawClient.connect(url, { headers });
    c.close();
    return "101";
  } catch (e) {
    const m = /handshake failed: HTTP\/1\.1 (\d{3})/.exec(String(e));
    if (!m) throw e;
    return m[1];
  }
}

/** Upgrades that succeed, kept open until disposed. */
async function open(url: string, n: number, headers?: Record<string, string>) {
  const cs: RawClient[] = [];
  for (let i = 0; i < n; i++) cs.push(await RawClient.connect(url, { headers }));
  return Object.assign(cs, {
    [Symbol.dispose]: () => cs.forEach((c) => c.close()),
  });
}

/** A kilobyte figure from `/proc/PID/status`. */
function procStatus(pid: number, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return m ? Number(m[1]) : NaN;
}

bbtest(
  "connections that send half a request head are closed by --header-timeout-ms",
  async (rt) => {
    await using s = await startServer({ runtime: rt, args: ["--header-timeout-ms", "1000"] });
    const N = 50;
    const conns = await Promise.all(Array.from({ length: N }, () => halfOpen(s.port)));
    try {
      // Bun's idle timer ticks in whole seconds, a few at a time: a generous bound, still finite.
      await within(Promise.all(conns.map((c) => c.ended)), 15_000, `close of ${N} half-open`);
    } finally {
      for (const c of conns) {
        try {
          c.conn.close();
        } catch { /* closed by the server */ }
      }
    }
    // Complete requests are served as before.
    assert.equal(await fetch(`${s.httpUrl}/healthz`).then((r) => r.text()), "ok\n");
    await using a = await peer(s.url);
    await a.ok(`/whois ${a.id}`);
  },
);

bbtest("a frame announced at 32 MB closes 1009 before its payload is read", async (rt) => {
  await using s = await startServer({ runtime: rt });
  const rssBefore = procStatus(s.pid, "VmRSS");
  const clients = await open(s.url, 8);
  using _ = clients;
  const results = await Promise.all(clients.map(async (c) => {
    await c.sendText(`/descp ${JSON.stringify({ id: newId(), name: "big" })}`);
    assert.equal((await c.reply()).type, "ok");
    // A masked text frame header announcing 32 MiB, then only 64 KiB of it.
    const head = new Uint8Array(14);
    head[0] = 0x81;
    head[1] = 0x80 | 127;
    new DataView(head.buffer).setBigUint64(2, BigInt(32 * 1024 * 1024));
    await c.conn.write(head);
    await c.conn.write(new Uint8Array(65536).fill(0x41)).catch(() => 0);
    return await within(c.readUntilClose(), 10_000, "close after the 32 MB header");
  }));
  for (const r of results) assert.equal(r.code, 1009);
  // Loose: nothing near 8 × 32 MB was buffered.
  const grown = procStatus(s.pid, "VmHWM") - rssBefore;
  assert.ok(grown < 64 * 1024, `peak RSS grew by ${grown} kB`);
  await using a = await peer(s.url);
  await a.ok(`/whois ${a.id}`);
});

bbtest(
  "--max-conns-per-ip: one more upgrade gets 429 and a log line; a close frees a place",
  async (rt) => {
    await using s = await startServer({ runtime: rt, args: ["--max-conns-per-ip", "3"] });
    {
      using _ = await open(s.url, 3);
      assert.equal(await refusal(s.url), "429");
      const line = s.logs().map((l) => JSON.parse(l)).find((l) => l.msg === "connection refused");
      assert.ok(line, `no log line in ${s.logs().join("\n")}`);
      assert.equal(line.status, 429);
      assert.equal(line.reason, "ip");
      // Plain HTTP is not counted.
      assert.equal((await fetch(`${s.httpUrl}/healthz`)).status, 200);
      const metrics = await fetch(`${s.httpUrl}/metrics`).then((r) => r.text());
      assert.match(metrics, /signaller_connections_refused_total\{reason="ip"\} 1/);
    }
    // Released on close: once the server has seen the three closes, three fit again.
    await until(async () => (await refusal(s.url)) === "101", 5000, "a place freed");
    using again = await open(s.url, 3);
    assert.equal(again.length, 3);
  },
);

bbtest("--max-conns: one more upgrade than the node serves gets 503", async (rt) => {
  await using s = await startServer({
    runtime: rt,
    args: ["--max-conns", "2", "--max-conns-per-ip", "0"],
  });
  using _ = await open(s.url, 2);
  assert.equal(await refusal(s.url), "503");
  const line = s.logs().map((l) => JSON.parse(l)).find((l) => l.msg === "connection refused");
  assert.equal(line?.status, 503);
  assert.equal(line?.reason, "global");
});

bbtest(
  "limits from the environment: SIGNALLER_MAX_CONNS_PER_IP, SIGNALLER_TRUST_PROXY",
  async (rt) => {
    await using s = await startServer({
      runtime: rt,
      env: { SIGNALLER_MAX_CONNS_PER_IP: "1", SIGNALLER_TRUST_PROXY: "true" },
    });
    using _ = await open(s.url, 1, { "X-Forwarded-For": "198.51.100.7" });
    assert.equal(await refusal(s.url, { "X-Forwarded-For": "198.51.100.7" }), "429");
    assert.equal(await refusal(s.url, { "X-Forwarded-For": "198.51.100.8" }), "101");
  },
);

bbtest(
  "--trust-proxy counts the last hop of X-Forwarded-For; without it the header is ignored",
  async (rt) => {
    const checks = async (s: ServerHandle, trusted: boolean) => {
      // The first hops are the client's to write: only the last one counts.
      using _ = await open(s.url, 2, { "X-Forwarded-For": "203.0.113.9, 192.0.2.1" });
      assert.equal(await refusal(s.url, { "X-Forwarded-For": "192.0.2.1" }), "429");
      assert.equal(
        await refusal(s.url, { "X-Forwarded-For": "192.0.2.1, 192.0.2.2" }),
        trusted ? "101" : "429",
      );
      // IPv6 clients are counted per /64.
      assert.equal(
        await refusal(s.url, { "X-Forwarded-For": "2001:db8:1:2::1" }),
        trusted ? "101" : "429",
      );
    };
    {
      await using s = await startServer({
        runtime: rt,
        args: ["--trust-proxy", "--max-conns-per-ip", "2"],
      });
      await checks(s, true);
      // A /64 no check above used: a place they took may not be given back yet.
      using _ = await open(s.url, 2, { "X-Forwarded-For": "2001:db8:1:4::1" });
      assert.equal(await refusal(s.url, { "X-Forwarded-For": "2001:db8:1:4:ffff::9" }), "429");
      assert.equal(await refusal(s.url, { "X-Forwarded-For": "2001:db8:1:5::1" }), "101");
    }
    {
      await using s = await startServer({ runtime: rt, args: ["--max-conns-per-ip", "2"] });
      await checks(s, false);
    }
  },
);

bbtest("framing: a fragmented message is one command; ping gets pong", async (rt) => {
  await using s = await startServer({ runtime: rt });
  using c = await RawClient.connect(s.url);
  const text = new TextEncoder().encode(`/descp ${JSON.stringify({ id: newId(), name: "frag" })}`);
  await c.sendFrame(0x01, text.subarray(0, 10), { fin: false });
  await c.sendFrame(0x00, text.subarray(10, 20), { fin: false });
  // A control frame may come between the fragments.
  await c.sendFrame(0x09, new TextEncoder().encode("hi"));
  await c.sendFrame(0x00, text.subarray(20));
  const pong = await within(c.readFrame(), 5000, "pong");
  assert.equal(pong?.opcode, 0x0a);
  assert.equal(new TextDecoder().decode(pong?.payload), "hi");
  assert.equal((await c.reply()).type, "ok");
});

bbtest(
  "framing: a message in more than 1 024 frames closes 1009 on Deno (Bun takes it whole)",
  async (rt) => {
    await using s = await startServer({ runtime: rt });
    using c = await RawClient.connect(s.url);
    const text = new TextEncoder().encode(`/descp ${JSON.stringify({ id: newId(), name: "f" })}`);
    await c.sendFrame(0x01, text, { fin: false });
    // Empty continuations add no bytes: only a count of frames bounds what they cost.
    const empty = new Uint8Array(0);
    for (let i = 0; i < 1100; i++) await c.sendFrame(0x00, empty, { fin: false });
    await c.sendFrame(0x00, empty);
    if (rt === "deno") {
      assert.equal((await within(c.readUntilClose(), 5000, "close")).code, 1009);
    } else assert.equal((await c.reply()).type, "ok");
  },
);

bbtest("framing: pings from a client that reads nothing do not pile up pongs", async (rt) => {
  await using s = await startServer({ runtime: rt });
  const before = procStatus(s.pid, "VmRSS");
  using c = await RawClient.connect(s.url);
  // 32 MB of pings whose pongs are never read.
  const pings = Array.from(
    { length: 1000 },
    () => ({ opcode: 0x09, payload: new Uint8Array(125) }),
  );
  try {
    for (let i = 0; i < 256; i++) await c.sendFrames(pings);
  } catch { /* closed by the server: as good */ }
  // Loose (garbage of 256 000 pings is collected late): queueing every pong took over 160 MB.
  const grown = procStatus(s.pid, "VmHWM") - before;
  assert.ok(grown < 64 * 1024, `peak RSS grew by ${grown} kB`);
  await using a = await peer(s.url);
  await a.ok(`/whois ${a.id}`);
});

bbtest("framing: invalid UTF-8 in a text frame closes 1007", async (rt) => {
  await using s = await startServer({ runtime: rt });
  using c = await RawClient.connect(s.url);
  // A lone surrogate encoded as UTF-8 (CESU): not UTF-8.
  await c.sendFrame(0x01, new Uint8Array([0x2f, 0xed, 0xa0, 0x80]));
  assert.equal((await within(c.readUntilClose(), 5000, "close")).code, 1007);
});

bbtest("framing: an unmasked client frame closes 1002", async (rt) => {
  await using s = await startServer({ runtime: rt });
  using c = await RawClient.connect(s.url);
  await c.conn.write(new Uint8Array([0x81, 0x02, 0x2f, 0x78]));
  assert.equal((await within(c.readUntilClose(), 5000, "close")).code, 1002);
});

/** Sends `request` on a fresh TCP connection; resolves with everything read until the server closes. */
async function rawHttp(port: number, request: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(request));
    let out = "";
    const buf = new Uint8Array(65536);
    const reading = (async () => {
      try {
        for (let n; (n = await conn.read(buf)) !== null;) {
          out += new TextDecoder().decode(buf.subarray(0, n));
        }
      } catch { /* reset after the answer */ }
    })();
    await within(reading, 15_000, "the server closing the connection");
    return out;
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

bbtest("plain HTTP: pipelined keep-alive requests, HEAD, 405, 400 and 431", async (rt) => {
  await using s = await startServer({ runtime: rt, args: ["--header-timeout-ms", "1000"] });
  const statuses = (text: string) => text.match(/^HTTP\/1\.1 \d{3}/gm)?.map((l) => l.slice(9));
  // Two requests in one write on a kept-alive connection: both answered, in order.
  const two = await rawHttp(
    s.port,
    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nothing HTTP/1.1\r\nHost: x\r\n\r\n",
  );
  assert.deepEqual(statuses(two), ["200", "404"]);
  const head = await rawHttp(
    s.port,
    "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  assert.deepEqual(statuses(head), ["200"]);
  assert.ok(head.endsWith("\r\n\r\n"), `a body after HEAD: ${JSON.stringify(head)}`);
  const post = await rawHttp(
    s.port,
    "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
  );
  assert.deepEqual(statuses(post), ["405"]);
  assert.deepEqual(statuses(await rawHttp(s.port, "GARBAGE\r\n\r\n")), ["400"]);
  const big = `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`;
  assert.deepEqual(statuses(await rawHttp(s.port, big)), ["431"]);
});
