/**
 * The unchanged `y-webrtc` 10 and `yjs` clients in headless Chromium: two
 * pages edit one `Y.Text` through the server and converge, on one node and on
 * two nodes of one Redis, on Deno and Bun.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { bbtest, type Runtime, type ServerHandle, startServer } from "../support/server.ts";
import { assertRedis, deleteKeys, redisTests, uniquePrefix } from "../support/redis.ts";
import { browserTests, launch, ready, TestPage } from "../browser_support/mod.ts";

const ENTRY = "tests/browser_support/y_webrtc_page.ts";
const env = browserTests("y-webrtc");
const redis = await redisTests();

function server(rt: Runtime, args: string[] = []): Promise<ServerHandle> {
  return startServer({ runtime: rt, args });
}

/** Two pages, each in its own browser context, join one room through `a` and `b`, and edit. */
async function converge(a: ServerHandle, b: ServerHandle): Promise<void> {
  await using browser = await launch();
  await using site = await TestPage.serve(ENTRY);
  const room = `room-${crypto.randomUUID()}`;
  const pages: Page[] = [];
  for (const s of [a, b]) {
    const page = await browser.page(site.url);
    await ready(page, "yw");
    await page.evaluate(
      ([room, url]) => globalThis.yw.join(room, url),
      [room, `ws://127.0.0.1:${s.port}/y-webrtc`] as const,
    );
    pages.push(page);
  }
  // Each page waits for the WebRTC connection the server brokered.
  for (const p of pages) {
    await p.waitForFunction(() => globalThis.yw.peers() > 0, null, { timeout: 20_000 });
  }
  await pages[0].evaluate(() => globalThis.yw.type("hello "));
  await pages[1].evaluate(() => globalThis.yw.type("world"));
  for (const p of pages) {
    await p.waitForFunction(() => globalThis.yw.text().length === 11, null, { timeout: 15_000 });
  }
  const texts = await Promise.all(pages.map((p) => p.evaluate(() => globalThis.yw.text())));
  assert.equal(texts[0], texts[1]);
  assert.ok(texts[0].includes("hello ") && texts[0].includes("world"), texts[0]);
  for (const p of pages) await p.evaluate(() => globalThis.yw.leave());
}

bbtest("y-webrtc in Chromium: two pages edit one Y.Text and converge", async (rt) => {
  await using s = await server(rt);
  await converge(s, s);
}, { ignore: env.ignore });

bbtest("y-webrtc in Chromium: pages on two nodes of one Redis converge", async (rt) => {
  assertRedis(redis);
  const prefix = uniquePrefix("ywb");
  try {
    const args = ["--redis", redis.url, "--redis-prefix", prefix];
    await using n1 = await server(rt, args);
    await using n2 = await server(rt, args);
    await converge(n1, n2);
  } finally {
    await deleteKeys(redis.url, prefix);
  }
}, { ignore: env.ignore || redis.ignore });

declare global {
  // The page's driver, defined by tests/browser_support/y_webrtc_page.ts.
  var yw: {
    join(room: string, signaling: string): void;
    type(s: string): void;
    text(): string;
    peers(): number;
    leave(): void;
  };
}
