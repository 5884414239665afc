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
import {
  comment,
  hostStream,
  joinStream,
  lobbyError,
  onScreen,
  openStream,
  parentOf,
  playing,
  seesDanmaku,
} from "./page.ts";

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
  await Promise.all([
    seesDanmaku(host.page, "¡qué vista!", "the host"),
    seesDanmaku(viewer.page, "¡qué vista!", "the viewer"),
    // Your own comment shows on your own page too (the server does not echo it).
    seesDanmaku(chatter.page, "¡qué vista!", "the sender"),
  ]);

  await until(
    "the viewer counts two watching",
    () => viewer.page.evaluate(() => document.getElementById("app")!.dataset.viewers === "2"),
  );

  // The screenshot, which asserts nothing: for a sharp picture the encoder gets a moment to
  // reach full size, then a few more comments fly (a busy machine may show fewer).
  const shown = (text: string) => onScreen(viewer.page, text);
  await until(
    "the picture is at full size",
    () => viewer.page.evaluate(() => document.querySelector("video")!.videoWidth >= 1280),
    8000,
  ).catch(() => {});
  await comment(chatter.page, "the lanterns look amazing", { color: 1 });
  await comment(viewer.page, "hi from Osaka", { color: 4 });
  await comment(chatter.page, "is that the night market in Taipei?", { color: 2 });
  await comment(host.page, "tonight: street food tour", { color: 0, mode: "bottom" });
  await comment(viewer.page, "the sound is perfect", { color: 6 });
  await comment(host.page, "welcome everyone!", { color: 5, mode: "top" });
  await viewer.page.locator("#dm-text").blur();
  // The pointer over the video shows where the stream comes from.
  await viewer.page.hover("#stage");
  await until(
    "the last comments are on screen",
    async () => (await shown("welcome everyone!")) && (await shown("the sound is perfect")),
    5000,
  )
    .catch(() => {});
  await Deno.mkdir(ROOT + "dist/test-artifacts", { recursive: true });
  const shot = await viewer.page.screenshot({ path: ROOT + "dist/test-artifacts/viewer.png" });
  const target = Deno.env.get("SIGNALLER_SCREENSHOT");
  if (target) await Deno.writeFile(target.startsWith("/") ? target : ROOT + target, shot);

  assert.deepEqual([...host.errors, ...viewer.errors, ...chatter.errors], []);
  await ctx.close();
});

browserTest("page: a keyed stream, kick and ban from the viewer list, the keyboard", async () => {
  await using server = await startServer();
  await using browser = await launch();
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const host = await hostStream(ctx, server.httpUrl + "/", "Host", { key: "s3cret", live: false });
  // Banning asks for confirmation.
  host.page.on("dialog", (d) => void d.accept());

  // Without the key: refused in the lobby; with it: in.
  const guest = await openStream(ctx, host.link, "Guest");
  await guest.page.fill("#name", "Guest");
  await guest.page.click("#go");
  assert.equal(await lobbyError(guest.page), "This stream needs a key.");
  const a = await joinStream(ctx, host.link, "Anna", "s3cret");
  const b = await joinStream(ctx, host.link, "Bo", "s3cret");

  // Only the keyboard: "c" goes to the comment box, Enter sends.
  await a.page.keyboard.press("c");
  await a.page.keyboard.type("typed, not clicked");
  await a.page.keyboard.press("Enter");
  await seesDanmaku(host.page, "typed, not clicked", "the host");

  // The host's list has a Kick and a Ban button per viewer; the viewers' lists have none.
  await host.page.click("#tab-viewers");
  const row = (id: string) => `#viewers li[data-peer="${id}"]`;
  await host.page.waitForSelector(row(b.id));
  assert.equal(await a.page.locator("#viewers button").count(), 0);
  // Kick Anna with the keyboard: focus her Kick button, press Enter.
  await host.page.focus(`${row(a.id)} button:text("Kick")`);
  await host.page.keyboard.press("Enter");
  await a.page.waitForSelector("#ended[open]");
  assert.equal(await a.page.textContent("#ended-title"), "You were removed");
  await host.page.waitForSelector(row(a.id), { state: "detached" });

  await host.page.click(`${row(b.id)} button:text("Ban")`);
  await b.page.waitForSelector("#ended[open]");
  assert.equal(await b.page.textContent("#ended-title"), "You were banned");
  await until(
    "no one left watching",
    () => host.page.evaluate(() => document.getElementById("app")!.dataset.viewers === "0"),
  );

  // Bo reloads the page, which takes him straight back (same peer, same key): still banned.
  await b.page.reload();
  assert.equal(await lobbyError(b.page), "You are banned from this stream.");
  assert.deepEqual([...host.errors, ...a.errors], []);
  await ctx.close();
});
