/**
 * The danmaku layer in real Chromium: at a few hundred comments a minute
 * (mixed scroll, top and bottom, some of them your own) no two comments on
 * screen ever overlap, checked at every frame, and every comment is shown;
 * pausing freezes them where they are.
 */
import assert from "node:assert/strict";
import { browserTest, bundle, bunFound, launch, until } from "./support.ts";
import type { LayerFixture } from "./layer_fixture.ts";

// Bundled once for all tests of the file; without Bun the tests are skipped.
const script = bunFound ? await bundle("tests/browser/layer_fixture.ts") : "";

function dm<T>(page: import("playwright-core").Page, f: (dm: LayerFixture) => T): Promise<T> {
  return page.evaluate(`(${f.toString()})(globalThis.dm)`) as Promise<T>;
}

browserTest("danmaku: 300 comments a minute, no overlap at any frame, none dropped", async () => {
  await using browser = await launch();
  const page = await browser.newPage({ viewport: { width: 900, height: 520 } });
  await page.setContent("<!doctype html><title>danmaku</title>");
  await page.addScriptTag({ content: script });
  // 300 a minute is one every 200 ms; 60 comments is 12 s of a busy stream.
  await dm(page, (d) => d.run(60, 200));
  await until(
    "every comment shown or dropped",
    async () => (await dm(page, (d) => d.counts().waiting)) === 0,
    30_000,
  );
  const counts = await dm(page, (d) => d.counts());
  const fx = await dm(page, (d) => ({ overlaps: d.overlaps, frames: d.frames, peak: d.peak }));
  assert.ok(fx.frames > 20, `frames were checked (${fx.frames})`);
  assert.ok(fx.peak >= 10, `the layer was busy (${fx.peak} comments at once)`);
  assert.deepEqual(fx.overlaps.slice(0, 5), [], `${fx.overlaps.length} overlapping pairs`);
  assert.deepEqual(counts, { shown: 60, dropped: 0, waiting: 0 });
}, { needsBun: true });

browserTest("danmaku: pause freezes the comments, resume moves them on", async () => {
  await using browser = await launch();
  const page = await browser.newPage({ viewport: { width: 900, height: 520 } });
  await page.setContent("<!doctype html><title>danmaku</title>");
  await page.addScriptTag({ content: script });
  await dm(page, (d) => d.run(3, 10));
  await until(
    "comments on screen",
    async () => Object.keys(await dm(page, (d) => d.positions())).length === 3,
  );
  await dm(page, (d) => d.pause());
  // A pause takes effect at the next frame.
  const paused = await dm(page, (d) => d.frames);
  await until("two frames later", async () => (await dm(page, (d) => d.frames)) > paused + 2);
  const frozen = await dm(page, (d) => d.positions());
  const frames = await dm(page, (d) => d.frames);
  await until("ten frames later", async () => (await dm(page, (d) => d.frames)) > frames + 10);
  assert.deepEqual(await dm(page, (d) => d.positions()), frozen, "nothing moved while paused");
  await dm(page, (d) => d.resume());
  await until("the comments move again", async () => {
    const now = await dm(page, (d) => d.positions());
    return Object.entries(now).some(([text, x]) =>
      frozen[text] !== undefined && x !== frozen[text]
    );
  });
  assert.deepEqual(await dm(page, (d) => d.overlaps), []);
}, { needsBun: true });
