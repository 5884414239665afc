/**
 * Driving the live-stream page (`GET /`) from the browser tests: a host who
 * goes live with the test pattern, viewers who join by the shared link, and
 * the conditions the tests wait for. Errors a page logs are kept, so a test
 * can assert there were none (a blocked script or a CSP violation shows there).
 */
import type { BrowserContext, Page } from "playwright-core";
import { until } from "./support.ts";

/** A page of the app, with what it logged. */
export interface AppPage {
  page: Page;
  /** The peer id the page is connected as. */
  id: string;
  /** Errors the page threw or logged, with its name. */
  errors: string[];
}

/**
 * Records, in the page, the text of every danmaku that gets a place on the video: a comment
 * shows for a few seconds only, and a busy machine may poll after it is gone.
 */
async function recordDanmaku(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const seen = new Set<string>();
    (globalThis as { danmakuSeen?: Set<string> }).danmakuSeen = seen;
    addEventListener("DOMContentLoaded", () => {
      new MutationObserver((records) => {
        for (const r of records) {
          for (const n of r.addedNodes) {
            // A comment that found no lane was measured and removed again: not shown.
            if (n instanceof HTMLElement && n.isConnected && n.style.visibility !== "hidden") {
              seen.add(n.textContent ?? "");
            }
          }
        }
      }).observe(document.getElementById("danmaku")!, { childList: true });
    });
  });
}

function watchErrors(page: Page, name: string): string[] {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(`[${name}] ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`[${name}] console: ${m.text()}`);
  });
  return errors;
}

async function enter(page: Page, name: string): Promise<string> {
  await page.fill("#name", name);
  await page.click("#go");
  await page.waitForSelector("#room:not([hidden])", { timeout: 30_000 });
  return await until(
    `${name} is connected`,
    () => page.evaluate(() => document.getElementById("app")!.dataset.self),
  );
}

/**
 * Opens the lobby at `url`, creates a stream as `name` (with `key`, if given) and goes live
 * with the test pattern (unless `live` is false).
 */
export async function hostStream(
  ctx: BrowserContext,
  url: string,
  name: string,
  options: { title?: string; key?: string; live?: boolean } = {},
): Promise<AppPage & { link: string }> {
  const page = await ctx.newPage();
  const errors = watchErrors(page, name);
  await recordDanmaku(page);
  await page.goto(url);
  if (options.title) await page.fill("#stream-title", options.title);
  if (options.key) await page.fill("#key", options.key);
  const id = await enter(page, name);
  if (options.live ?? true) {
    await page.click("#golive");
    await until(
      `${name} is live`,
      () => page.evaluate(() => document.getElementById("app")!.dataset.live === "true"),
    );
  }
  // The link a host shares: the page's address without the host's own parameters.
  const link = new URL(page.url());
  link.search = `?c=${link.searchParams.get("c")}`;
  return { page, id, errors, link: link.href };
}

/** Opens `link` (a shared stream) and joins as `name` (with `key`, if given). */
export async function joinStream(
  ctx: BrowserContext,
  link: string,
  name: string,
  key?: string,
): Promise<AppPage> {
  const opened = await openStream(ctx, link, name);
  if (key) await opened.page.fill("#key", key);
  const id = await enter(opened.page, name);
  return { ...opened, id };
}

/** Opens `link` and stays in its lobby. */
export async function openStream(
  ctx: BrowserContext,
  link: string,
  name: string,
): Promise<AppPage> {
  const page = await ctx.newPage();
  const errors = watchErrors(page, name);
  await recordDanmaku(page);
  await page.goto(link);
  return { page, id: "", errors };
}

/** Waits until the lobby shows an error, and returns it. */
export function lobbyError(page: Page): Promise<string> {
  return until(
    "an error in the lobby",
    () => page.evaluate(() => document.getElementById("lobby-error")!.textContent),
  );
}

/** Waits until the page's video has a picture and its time advances. */
export async function playing(page: Page, what: string, timeoutMs = 30_000): Promise<void> {
  await until(
    `${what}: the video has a picture`,
    () => page.evaluate(() => document.querySelector("video")!.videoWidth > 0),
    timeoutMs,
  );
  const t0 = await page.evaluate(() => document.querySelector("video")!.currentTime);
  await until(
    `${what}: the video's time advances`,
    () => page.evaluate((t) => document.querySelector("video")!.currentTime > t + 0.3, t0),
    timeoutMs,
  );
}

/** Waits until the page's video has presented `n` new frames (frames, not just time). */
export async function newFrames(page: Page, n: number, timeoutMs: number): Promise<void> {
  const ok = await page.evaluate(([count, ms]) =>
    new Promise<boolean>((resolve) => {
      const v = document.querySelector("video")!;
      let seen = 0;
      const timer = setTimeout(() => resolve(false), ms);
      const frame = () => {
        if (++seen >= count) {
          clearTimeout(timer);
          resolve(true);
        } else v.requestVideoFrameCallback(frame);
      };
      v.requestVideoFrameCallback(frame);
    }), [n, timeoutMs]);
  if (!ok) throw new Error(`fewer than ${n} new video frames within ${timeoutMs} ms`);
}

/** The page's relay parent (the peer it takes the stream from). */
export function parentOf(page: Page): Promise<string | undefined> {
  return page.evaluate(() => document.getElementById("app")!.dataset.parent || undefined);
}

/** Sends a danmaku from the composer. */
export async function comment(
  page: Page,
  text: string,
  options: { color?: number; mode?: "scroll" | "top" | "bottom" } = {},
): Promise<void> {
  await page.fill("#dm-text", text);
  await page.check(`input[name=color] >> nth=${options.color ?? 0}`);
  await page.check(`input[name=mode][value=${options.mode ?? "scroll"}]`);
  await page.press("#dm-text", "Enter");
}

/** Waits until a danmaku with `text` has been shown over the page's video. */
export async function seesDanmaku(page: Page, text: string, what: string): Promise<void> {
  await until(
    `${what} renders "${text}"`,
    () =>
      page.evaluate(
        (t) => (globalThis as { danmakuSeen?: Set<string> }).danmakuSeen?.has(t) ?? false,
        text,
      ),
  );
}

/** Whether a danmaku with `text` is over the page's video right now. */
export function onScreen(page: Page, text: string): Promise<boolean> {
  return page.evaluate(
    (t) => [...document.querySelectorAll("#danmaku .dm")].some((e) => e.textContent === t),
    text,
  );
}

/**
 * Waits until the page's stream carries sound: the test pattern beeps once a
 * second, heard through an analyser on the video's stream.
 */
export async function hearsBeep(page: Page, timeoutMs: number): Promise<void> {
  const ok = await page.evaluate((ms) =>
    new Promise<boolean>((resolve) => {
      const stream = document.querySelector("video")!.srcObject as MediaStream;
      const ctx = new AudioContext();
      const analyser = ctx.createAnalyser();
      ctx.createMediaStreamSource(stream).connect(analyser);
      const samples = new Float32Array(analyser.fftSize);
      const deadline = performance.now() + ms;
      const poll = setInterval(() => {
        analyser.getFloatTimeDomainData(samples);
        const peak = samples.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        if (peak > 0.01 || performance.now() > deadline) {
          clearInterval(poll);
          void ctx.close();
          resolve(peak > 0.01);
        }
      }, 20);
    }), timeoutMs);
  if (!ok) throw new Error(`no sound in the stream within ${timeoutMs} ms`);
}
