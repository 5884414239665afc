/**
 * Support for the browser tests: headless Chromium through playwright-core,
 * the real server spawned on a free port, bundles of test scripts, and waits
 * that always end (a condition or a timeout, never a bare sleep).
 *
 * Without `/usr/bin/chromium` (or `$CHROMIUM`) the browser tests are skipped
 * with one printed line; with `CI=true` a missing browser is an error.
 *
 * @example
 * ```ts
 * import { browserTest, launch, startServer } from "./support.ts";
 *
 * browserTest("the page answers", async () => {
 *   await using server = await startServer();
 *   await using browser = await launch();
 *   const page = await browser.newPage();
 *   await page.goto(server.httpUrl + "/");
 * });
 * ```
 * @module
 */
import { type Browser, chromium } from "playwright-core";

/** The repository root. */
export const ROOT: string = new URL("../..", import.meta.url).pathname;

/** The Chromium binary: `$CHROMIUM`, or Debian's `/usr/bin/chromium`. */
export const CHROMIUM: string = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";

/** Chromium's flags: headless, no sandbox (root in a container), fake camera and microphone. */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  // Plain host candidates instead of mDNS names: no multicast leaves the machine.
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  // Several pages play video at once; none of them may be throttled as a background page.
  "--disable-renderer-backgrounding",
  "--disable-background-timer-throttling",
  "--disable-backgrounding-occluded-windows",
  "--autoplay-policy=no-user-gesture-required",
];

function has(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const CI = Deno.env.get("CI") === "true";

/** Whether Chromium is there to run the browser tests. */
export const chromiumFound: boolean = has(CHROMIUM);
if (!chromiumFound) {
  if (CI) throw new Error(`CI=true: Chromium is missing at ${CHROMIUM} (apt-get install chromium)`);
  console.warn(`skipping the browser tests: no Chromium at ${CHROMIUM} (apt-get install chromium)`);
}

function runs(cmd: string): boolean {
  try {
    return new Deno.Command(cmd, { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** Whether `bun` is there to bundle test scripts (see {@linkcode bundle}). */
export const bunFound: boolean = runs("bun");
if (!bunFound) {
  if (CI) throw new Error("CI=true: `bun` is not on the PATH (it bundles the test scripts)");
  console.warn("skipping the browser tests that load a bundled script: `bun` is not on the PATH");
}

/**
 * Registers a test that needs Chromium (and, with `needsBun`, Bun to bundle
 * its script): skipped (see above) when it is missing.
 */
export function browserTest(
  name: string,
  fn: () => Promise<void>,
  options: { needsBun?: boolean } = {},
): void {
  Deno.test({
    name: `[chromium] ${name}`,
    ignore: !chromiumFound || (options.needsBun === true && !bunFound),
    // playwright-core keeps its own timers and sockets to the browser alive between tests.
    sanitizeOps: false,
    sanitizeResources: false,
    fn,
  });
}

/** A launched browser that closes itself with `await using`. */
export type OwnedBrowser = Browser & AsyncDisposable;

/** Launches headless Chromium with {@linkcode CHROMIUM_ARGS}. */
export async function launch(): Promise<OwnedBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [...CHROMIUM_ARGS],
    timeout: 60_000,
  });
  return Object.assign(browser, {
    [Symbol.asyncDispose]: () => browser.close(),
  });
}

/** A running server. */
export interface Server extends AsyncDisposable {
  /** `ws://127.0.0.1:PORT/` */
  url: string;
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  httpUrl: string;
  /** Its last lines of stderr, for failure messages. */
  logs(): string;
  /** SIGTERM, then waits for the exit (SIGKILL after 10 s); resolves to the exit code. */
  stop(): Promise<number>;
}

const LISTENING = /^signaller listening on ws:\/\/(\S+):(\d+)\/\s*$/m;

/**
 * Spawns the server (`deno run -A server.ts`, or `command` such as the single
 * binary, in `cwd`: the repository root unless given) on a free port of
 * 127.0.0.1 and waits for its first line,
 * `signaller listening on ws://HOST:PORT/` (60 s at most).
 */
export async function startServer(
  options: { command?: string[]; args?: string[]; cwd?: string } = {},
): Promise<Server> {
  const [cmd, ...pre] = options.command ?? ["deno", "run", "-A", "server.ts"];
  const child = new Deno.Command(cmd, {
    args: [...pre, "--port", "0", "--host", "127.0.0.1", ...(options.args ?? [])],
    cwd: options.cwd ?? ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  const decoder = () => new TextDecoderStream();
  const drainOut = (async () => {
    for await (const chunk of child.stdout.pipeThrough(decoder())) out += chunk;
  })();
  const drainErr = (async () => {
    for await (const chunk of child.stderr.pipeThrough(decoder())) {
      err = (err + chunk).slice(-8000);
    }
  })();
  const status = child.status;
  const exited = status.then(() => undefined);
  const deadline = Date.now() + 60_000;
  let match: RegExpMatchArray | null = null;
  while (!(match = out.match(LISTENING))) {
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await status;
      throw new Error(`the server did not listen within 60 s\n${out}\n${err}`);
    }
    const gone = await Promise.race([exited.then(() => true), tick(50).then(() => false)]);
    if (gone) throw new Error(`the server exited before listening\n${out}\n${err}`);
  }
  const port = Number(match[2]);
  let stopped: Promise<number> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      child.kill("SIGTERM");
      const late = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const { code } = await status;
      clearTimeout(late);
      await Promise.all([drainOut, drainErr]);
      return code;
    })();
  return {
    url: `ws://127.0.0.1:${port}/`,
    httpUrl: `http://127.0.0.1:${port}`,
    logs: () => err,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}

/**
 * Bundles `entry` (a path from the repository root) for the browser with
 * `bun build`, returning the script.
 */
export async function bundle(entry: string): Promise<string> {
  const out = await Deno.makeTempDir({ prefix: "signaller-bundle-" });
  try {
    const r = await new Deno.Command("bun", {
      args: ["build", entry, "--target", "browser", "--outfile", `${out}/out.js`],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!r.success) {
      throw new Error(`bun build ${entry} failed:\n${new TextDecoder().decode(r.stderr)}`);
    }
    return await Deno.readTextFile(`${out}/out.js`);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

/** Resolves after `ms` — only to pace a polling loop, never as synchronisation. */
export function tick(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `condition` until it returns a truthy value, which it resolves to;
 * rejects with `what` after `timeoutMs`.
 */
export async function until<T>(
  what: string,
  condition: () => T | Promise<T>,
  timeoutMs = 30_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const v = await condition();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await tick(100);
  }
}
