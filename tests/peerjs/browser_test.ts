/**
 * The unchanged `peerjs` 1.5 client in headless Chromium, against the server
 * on Deno and Bun, alone and as two nodes of one Redis.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { bbtest, type Runtime, type ServerHandle, startServer } from "../support/server.ts";
import { within } from "../support/wait.ts";
import { assertRedis, deleteKeys, redisTests, uniquePrefix } from "../support/redis.ts";
import {
  browserTests,
  CuttableProxy,
  launch,
  ready,
  type TestBrowser,
  TestPage,
} from "../browser_support/mod.ts";

const ENTRY = "tests/browser_support/peerjs_page.ts";
const EXPIRE = 1000;
const env = browserTests("PeerJS");
const redis = await redisTests();

/** Options a page gives `new Peer(id, options)` to reach `port`. */
function options(port: number) {
  return { host: "127.0.0.1", port, path: "/", key: "peerjs" };
}

/** A page whose peer `id` is open on the server at `port`. */
async function peerPage(browser: TestBrowser, site: TestPage, id: string, port: number) {
  const page = await browser.page(site.url);
  await ready(page, "pj");
  const r = await within(
    page.evaluate(([id, o]) => globalThis.pj.start(id, o), [id, options(port)] as const),
    10_000,
    `${id} open`,
  );
  assert.equal(r, `open:${id}`);
  return page;
}

/** Waits until `page` has received `data` over a DataConnection. */
async function receives(page: Page, data: unknown): Promise<void> {
  await page.waitForFunction(
    (d) => globalThis.pj.received().some((r) => JSON.stringify(r) === JSON.stringify(d)),
    data,
    { timeout: 15_000 },
  );
}

/** Page `a` opens a DataConnection to `bId` (on page `b`) and they talk both ways. */
async function talk(a: Page, aId: string, b: Page, bId: string): Promise<void> {
  const r = await within(a.evaluate((t) => globalThis.pj.connect(t), bId), 20_000, "connection");
  assert.equal(r, "open");
  await a.evaluate(([t, d]) => globalThis.pj.send(t, d), [bId, { hello: "from a" }] as const);
  await receives(b, { hello: "from a" });
  await b.waitForFunction((t) => globalThis.pj.isOpen(t), aId, { timeout: 15_000 });
  await b.evaluate(([t, d]) => globalThis.pj.send(t, d), [aId, { hello: "from b" }] as const);
  await receives(a, { hello: "from b" });
}

function newPeer(tag: string): string {
  return `${tag}-${crypto.randomUUID().slice(0, 8)}`;
}

function server(rt: Runtime, args: string[] = []): Promise<ServerHandle> {
  return startServer({ runtime: rt, args: ["--peerjs-expire-ms", String(EXPIRE), ...args] });
}

bbtest("PeerJS in Chromium: two pages open a DataConnection and talk both ways", async (rt) => {
  await using s = await server(rt);
  await using browser = await launch();
  await using site = await TestPage.serve(ENTRY);
  const aId = newPeer("a"), bId = newPeer("b");
  const a = await peerPage(browser, site, aId, s.port);
  const b = await peerPage(browser, site, bId, s.port);
  await talk(a, aId, b, bId);
}, { ignore: env.ignore });

bbtest("PeerJS in Chromium: pages on two nodes of one Redis talk", async (rt) => {
  assertRedis(redis);
  const prefix = uniquePrefix("pjb");
  try {
    const args = ["--redis", redis.url, "--redis-prefix", prefix];
    await using n1 = await server(rt, args);
    await using n2 = await server(rt, args);
    await using browser = await launch();
    await using site = await TestPage.serve(ENTRY);
    const aId = newPeer("a"), bId = newPeer("b");
    const a = await peerPage(browser, site, aId, n1.port);
    const b = await peerPage(browser, site, bId, n2.port);
    await talk(a, aId, b, bId);
    // The id is taken on the other node too.
    const c = await browser.page(site.url);
    await ready(c, "pj");
    const taken = await c.evaluate(
      ([id, o]) => globalThis.pj.start(id, o),
      [
        aId,
        options(n2.port),
      ] as const,
    );
    assert.equal(taken, "error:unavailable-id");
  } finally {
    await deleteKeys(redis.url, prefix);
  }
}, { ignore: env.ignore || redis.ignore });

bbtest("PeerJS in Chromium: a page claiming a taken id gets unavailable-id", async (rt) => {
  await using s = await server(rt);
  await using browser = await launch();
  await using site = await TestPage.serve(ENTRY);
  const id = newPeer("a");
  await peerPage(browser, site, id, s.port);
  const b = await browser.page(site.url);
  await ready(b, "pj");
  const r = await b.evaluate(
    ([id, o]) => globalThis.pj.start(id, o),
    [id, options(s.port)] as const,
  );
  assert.equal(r, "error:unavailable-id");
}, { ignore: env.ignore });

bbtest(
  "PeerJS in Chromium: connecting to an id nobody holds gets peer-unavailable after the expire time",
  async (rt) => {
    await using s = await server(rt);
    await using browser = await launch();
    await using site = await TestPage.serve(ENTRY);
    const a = await peerPage(browser, site, newPeer("a"), s.port);
    const t0 = Date.now();
    const r = await within(
      a.evaluate((t) => globalThis.pj.connect(t), newPeer("nobody")),
      EXPIRE + 5000,
      "peer-unavailable",
    );
    assert.equal(r, "error:peer-unavailable");
    assert.ok(Date.now() - t0 >= EXPIRE - 100, "not before the expire time");
  },
  { ignore: env.ignore },
);

bbtest(
  "PeerJS in Chromium: a page that loses its connection and reconnects with its token keeps its id",
  async (rt) => {
    await using s = await server(rt);
    await using proxy = new CuttableProxy(s.port);
    await using browser = await launch();
    await using site = await TestPage.serve(ENTRY);
    const aId = newPeer("a");
    const a = await peerPage(browser, site, aId, proxy.port);
    proxy.cut();
    await a.waitForFunction(() => globalThis.pj.disconnects() > 0, null, { timeout: 10_000 });
    // While it is away, nobody else gets its id.
    const other = await browser.page(site.url);
    await ready(other, "pj");
    const taken = await other.evaluate(
      ([id, o]) => globalThis.pj.start(id, o),
      [
        aId,
        options(s.port),
      ] as const,
    );
    assert.equal(taken, "error:unavailable-id");
    const back = await within(a.evaluate(() => globalThis.pj.reconnect()), 10_000, "reconnect");
    assert.equal(back, `open:${aId}`);
    const bId = newPeer("b");
    const b = await peerPage(browser, site, bId, s.port);
    await talk(b, bId, a, aId);
  },
  { ignore: env.ignore },
);

declare global {
  // The page's driver, defined by tests/browser_support/peerjs_page.ts.
  var pj: {
    start(id: string, o: ReturnType<typeof options>): Promise<string>;
    connect(target: string): Promise<string>;
    isOpen(target: string): boolean;
    send(target: string, data: unknown): void;
    received(): unknown[];
    disconnects(): number;
    reconnect(): Promise<string>;
  };
}
