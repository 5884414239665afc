/**
 * The live-stream page at `GET /`, in real headless Chromium against the real
 * server: a host goes live with the test pattern, a viewer plays the stream
 * peer to peer, a third page posts danmaku and both others render them.
 *
 * A screenshot of the viewer's page is saved to `dist/test-artifacts/`, and
 * to `$SIGNALLER_SCREENSHOT` when set (`deno task screenshot` refreshes
 * `docs/screenshot.png`).
 */
import assert from "node:assert/strict";
import { browserTest, launch, ROOT, startServer, until } from "./support.ts";
import { comment, hostStream, joinStream, parentOf, playing, seesDanmaku } from "./page.ts";

browserTest("page: a host goes live, a viewer plays it, danmaku reach everyone", async () => {
  await using server = await startServer();
  await using browser = await launch();
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const host = await hostStream(ctx, server.httpUrl + "/", "Mei", { title: "Night market walk" });
  const viewer = await joinStream(ctx, host.link, "Ken");
  await playing(viewer.page, "the viewer");
  assert.equal(await parentOf(viewer.page), host.id, "the first viewer is fed by the host");

  const chatter = await joinStream(ctx, host.link, "Aiko");
  await comment(chatter.page, "¡qué vista!", { color: 3 });
  for (const [page, who] of [[host.page, "the host"], [viewer.page, "the viewer"]] as const) {
    await seesDanmaku(page, "¡qué vista!", who);
  }
  // Your own comment shows at once on your own page too.
  await seesDanmaku(chatter.page, "¡qué vista!", "the sender");

  // A few more, for the screenshot: other colours, a held comment.
  await comment(chatter.page, "the lanterns look amazing", { color: 1 });
  await comment(host.page, "welcome everyone!", { color: 5, mode: "top" });
  await comment(viewer.page, "hi from Osaka", { color: 4 });
  await seesDanmaku(viewer.page, "welcome everyone!", "the viewer");
  await seesDanmaku(viewer.page, "the lanterns look amazing", "the viewer");
  await until(
    "the viewer counts two watching",
    () => viewer.page.evaluate(() => document.getElementById("app")!.dataset.viewers === "2"),
  );

  // For a sharp screenshot, give the encoder a moment to reach full size (best effort: a busy
  // machine may keep it lower, which is not a failure).
  await until(
    "the picture is at full size",
    () => viewer.page.evaluate(() => document.querySelector("video")!.videoWidth >= 1280),
    8000,
  ).catch(() => {});
  await viewer.page.locator("#dm-text").blur();
  await Deno.mkdir(ROOT + "dist/test-artifacts", { recursive: true });
  const shot = await viewer.page.screenshot({ path: ROOT + "dist/test-artifacts/viewer.png" });
  const target = Deno.env.get("SIGNALLER_SCREENSHOT");
  if (target) await Deno.writeFile(target.startsWith("/") ? target : ROOT + target, shot);

  assert.deepEqual([...host.errors, ...viewer.errors, ...chatter.errors], []);
  await ctx.close();
});
