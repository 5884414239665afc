/**
 * `client/rtc.ts` in real Chromium pages against the real server: a data
 * channel between two pages, signalled through `/privmsg`, when one side
 * starts, when both start at the same moment (glare), after an ICE restart,
 * and after one side closes its link and opens a new one.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { browserTest, bundle, bunFound, launch, startServer, until } from "./support.ts";
import type { Fixture } from "./rtc_fixture.ts";

type Fx = { fx: Fixture };

async function fixturePage(
  browser: Awaited<ReturnType<typeof launch>>,
  script: string,
  url: string,
  name: string,
): Promise<{ page: Page; id: string }> {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error(`[${name}] page error:`, e.message));
  await page.setContent(`<!doctype html><title>${name}</title>`);
  await page.addScriptTag({ content: script });
  const id = await page.evaluate(([u, n]) => (globalThis as unknown as Fx).fx.init(u, n), [
    url,
    name,
  ]);
  return { page, id };
}

function fx<T>(page: Page, f: (fx: Fixture) => T): Promise<T> {
  // Playwright serialises the function's source; `fx` is found on the page's global.
  return page.evaluate(`(${f.toString()})(globalThis.fx)`) as Promise<T>;
}

/** Sends one message each way and waits until both arrived. */
async function bothWays(a: Page, b: Page, label: string): Promise<void> {
  await until(
    `${label}: a data channel open on both sides`,
    async () => (await fx(a, (f) => f.open())) && (await fx(b, (f) => f.open())),
  );
  await a.evaluate(`globalThis.fx.send("a→b ${label}")`);
  await b.evaluate(`globalThis.fx.send("b→a ${label}")`);
  await until(
    `${label}: b got a's message`,
    async () => (await fx(b, (f) => f.received)).includes(`a→b ${label}`),
  );
  await until(
    `${label}: a got b's message`,
    async () => (await fx(a, (f) => f.received)).includes(`b→a ${label}`),
  );
}

// Bundled once for all tests of the file; without Bun the tests are skipped.
const script = bunFound ? await bundle("tests/browser/rtc_fixture.ts") : "";

browserTest("rtc.ts: a data channel opens and carries a message both ways", async () => {
  await using server = await startServer();
  await using browser = await launch();
  const a = await fixturePage(browser, script, server.url, "a");
  const b = await fixturePage(browser, script, server.url, "b");
  await a.page.evaluate(`globalThis.fx.connect("${b.id}")`);
  await bothWays(a.page, b.page, "first");
  assert.equal(await fx(a.page, (f) => f.offersSent), 1, "one offer, no renegotiation");
  assert.equal(await fx(b.page, (f) => f.offersSent), 0, "the answering side sent no offer");
}, { needsBun: true });

browserTest("rtc.ts: both sides offering at the same moment still connect (glare)", async () => {
  await using server = await startServer();
  await using browser = await launch();
  const a = await fixturePage(browser, script, server.url, "a");
  const b = await fixturePage(browser, script, server.url, "b");
  // Each side's offer is held back from the other until both have sent one.
  await a.page.evaluate("globalThis.fx.hold(true)");
  await b.page.evaluate("globalThis.fx.hold(true)");
  await a.page.evaluate(`globalThis.fx.connect("${b.id}")`);
  await b.page.evaluate(`globalThis.fx.connect("${a.id}")`);
  await until(
    "both pages sent an offer",
    async () =>
      (await fx(a.page, (f) => f.offersSent)) >= 1 && (await fx(b.page, (f) => f.offersSent)) >= 1,
  );
  await Promise.all([
    a.page.evaluate("globalThis.fx.hold(false)"),
    b.page.evaluate("globalThis.fx.hold(false)"),
  ]);
  await bothWays(a.page, b.page, "glare");
  const collisions = (await fx(a.page, (f) => f.collisions)) +
    (await fx(b.page, (f) => f.collisions));
  assert.equal(collisions, 2, "each side got the other's offer while its own was out");
  for (const p of [a.page, b.page]) {
    assert.equal(await fx(p, (f) => f.state()), "connected/stable");
  }
}, { needsBun: true });

browserTest(
  "rtc.ts: the link carries messages after an ICE restart and after a new session",
  async () => {
    await using server = await startServer();
    await using browser = await launch();
    const a = await fixturePage(browser, script, server.url, "a");
    const b = await fixturePage(browser, script, server.url, "b");
    await a.page.evaluate(`globalThis.fx.connect("${b.id}")`);
    await bothWays(a.page, b.page, "before");

    // An ICE restart from the answering side: new credentials on both, same channel.
    const ufragA = await fx(a.page, (f) => f.ufrag());
    const ufragB = await fx(b.page, (f) => f.ufrag());
    await b.page.evaluate("globalThis.fx.restartIce()");
    await until(
      "new ICE credentials on both sides",
      async () =>
        (await fx(a.page, (f) => f.ufrag())) !== ufragA &&
        (await fx(b.page, (f) => f.ufrag())) !== ufragB &&
        (await fx(a.page, (f) => f.state())) === "connected/stable" &&
        (await fx(b.page, (f) => f.state())) === "connected/stable",
    );
    await bothWays(a.page, b.page, "after the ICE restart");

    // A closes its link and opens a new one: B is told (bye) and takes the new session.
    await a.page.evaluate("globalThis.fx.closeLink()");
    await until(
      "b saw the bye",
      async () => (await fx(b.page, (f) => f.closedReasons)).includes("bye"),
    );
    await a.page.evaluate(`globalThis.fx.connect("${b.id}")`);
    await bothWays(a.page, b.page, "new session");
    assert.deepEqual(
      await fx(a.page, (f) => f.closedReasons),
      ["local"],
    );
  },
  { needsBun: true },
);
