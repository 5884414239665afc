/**
 * What the tests of unchanged third-party clients in real headless Chromium
 * share: whether they can run here, the browser, the page serving a script
 * bundled with `bun build`, and a TCP proxy whose connections a test can cut.
 *
 * Without `/usr/bin/chromium` (or `bun`, which bundles the page) the tests are
 * skipped with one printed line; with `CI=true` they must run, and fail.
 *
 * @example
 * ```ts
 * import { browserTests, launch, TestPage } from "../browser_support/mod.ts";
 *
 * const env = browserTests("PeerJS");
 * Deno.test({ name: "two pages talk", ignore: env.ignore }, async () => {
 *   await using browser = await launch();
 *   await using site = await TestPage.serve("tests/browser_support/peerjs_page.ts");
 *   const page = await browser.page(site.url);
 * });
 * ```
 * @module
 */
import { type Browser, chromium, type Page } from "playwright-core";
import { bundle as bundleOnce, CHROMIUM, CHROMIUM_ARGS } from "../browser/support.ts";

export { CHROMIUM };

/** Whether this machine can run the browser tests. */
export interface BrowserEnv {
  /** Pass as `Deno.test`'s `ignore`. */
  ignore: boolean;
}

/** Checks Chromium and Bun once; prints one line when the `what` browser tests are skipped. */
export function browserTests(what: string): BrowserEnv {
  const missing = [];
  if (!exists(CHROMIUM)) missing.push(`${CHROMIUM} (apt-get install -y chromium, or $CHROMIUM)`);
  if (!runs("bun")) missing.push("bun (bundles the test page)");
  if (missing.length === 0) return { ignore: false };
  if (Deno.env.get("CI") === "true") {
    throw new Error(`CI=true: the ${what} browser tests need ${missing.join(" and ")}`);
  }
  console.log(`${what} browser tests skipped: missing ${missing.join(" and ")}.`);
  return { ignore: true };
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function runs(cmd: string): boolean {
  try {
    return new Deno.Command(cmd, { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** Headless Chromium; each page gets a context of its own (no shared storage, no BroadcastChannel). */
export interface TestBrowser extends AsyncDisposable {
  browser: Browser;
  /** A new page in a new context, at `url`. */
  page(url: string): Promise<Page>;
}

/** Launches Debian's Chromium, headless, with nothing that reaches the network by itself. */
export async function launch(): Promise<TestBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // The page tests' flags, and loopback allowed: two pages of this machine connect.
    args: [...CHROMIUM_ARGS, "--allow-loopback-in-peer-connection"],
  });
  return {
    browser,
    async page(url: string) {
      const context = await browser.newContext();
      const page = await context.newPage();
      page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
      await page.goto(url);
      return page;
    },
    async [Symbol.asyncDispose]() {
      await browser.close();
    },
  };
}

const bundles = new Map<string, Promise<string>>();

/** `entry` (relative to the repository root) bundled for the browser by `bun build`, once. */
export function bundle(entry: string): Promise<string> {
  let b = bundles.get(entry);
  if (b === undefined) bundles.set(entry, b = bundleOnce(entry));
  return b;
}

/** An HTTP server for the test page: `/` loads the bundled `entry`. */
export class TestPage implements AsyncDisposable {
  readonly url: string;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  private constructor(server: Deno.HttpServer<Deno.NetAddr>) {
    this.#server = server;
    this.url = `http://127.0.0.1:${server.addr.port}/`;
  }

  /** Serves a page running `entry` (a path relative to the repository root). */
  static async serve(entry: string): Promise<TestPage> {
    const script = await bundle(entry);
    const html = `<!doctype html><meta charset="utf-8"><title>test</title>` +
      `<script type="module" src="/page.js"></script>`;
    const server = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen() {} },
      (req) =>
        new URL(req.url).pathname === "/page.js"
          ? new Response(script, { headers: { "content-type": "text/javascript" } })
          : new Response(html, { headers: { "content-type": "text/html" } }),
    );
    return new TestPage(server);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#server.shutdown();
  }
}

/** Waits until `page` has defined `globalThis[name]` (its bundled script ran). */
export async function ready(page: Page, name: string): Promise<void> {
  await page.waitForFunction((n) => n in globalThis, name, { timeout: 10_000 });
}

/**
 * A TCP proxy to `port` on 127.0.0.1: a page connected through it loses its
 * connection, without any close frame, when the test calls `cut()`.
 */
export class CuttableProxy implements AsyncDisposable {
  readonly port: number;
  readonly #listener: Deno.TcpListener;
  readonly #open = new Set<Deno.TcpConn>();
  readonly #pipes = new Set<Promise<unknown>>();
  readonly #accepting: Promise<void>;

  constructor(target: number) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#accepting = this.#accept(target);
  }

  async #accept(target: number): Promise<void> {
    try {
      for await (const down of this.#listener) {
        const up = await Deno.connect({ hostname: "127.0.0.1", port: target });
        this.#open.add(down);
        this.#open.add(up);
        const pipe = Promise.allSettled([
          down.readable.pipeTo(up.writable),
          up.readable.pipeTo(down.writable),
        ]).finally(() => {
          this.#open.delete(down);
          this.#open.delete(up);
          this.#pipes.delete(pipe);
        });
        this.#pipes.add(pipe);
      }
    } catch {
      // The listener closed.
    }
  }

  /** Ends every proxied connection at once: both sides see the TCP connection end. */
  cut(): void {
    for (const c of this.#open) {
      try {
        c.close();
      } catch {
        // Already closed by its pipe.
      }
    }
    this.#open.clear();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    this.cut();
    await this.#accepting;
    await Promise.allSettled([...this.#pipes]);
  }
}
