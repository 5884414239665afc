/**
 * Builds the page served at `GET /` into one self-contained file,
 * `client/danmaku/dist/index.html`: `index.html` with `style.css` and the
 * bundle of `main.ts` (made with `bun build`, minified) inlined, a Content
 * Security Policy that allows exactly those two, and a stamp: the SHA-256 of
 * every source the page is built from.
 *
 * The built file is committed, so the server serves the page with no build
 * step, on a fresh clone with only Deno. `--check` only compares the stamp
 * with the sources (it needs no Bun): CI fails when the committed page is
 * older than its sources.
 *
 *     deno run -A client/danmaku/build.ts           # build
 *     deno run -A client/danmaku/build.ts --check   # is the built page up to date?
 *
 * @module
 */

const ROOT = new URL("../../", import.meta.url);
const HERE = new URL("./", import.meta.url);
const OUT = new URL("dist/index.html", HERE);

/** Every source of the page: the client, the protocol, this script, the bundled packages. */
async function sourceStamp(): Promise<string> {
  const files: string[] = [];
  const walk = async (dir: URL, rel: string) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.name === "dist" || e.name.startsWith(".")) continue;
      if (e.isDirectory) await walk(new URL(e.name + "/", dir), `${rel}${e.name}/`);
      else if (/\.(ts|html|css)$/.test(e.name)) files.push(`${rel}${e.name}`);
    }
  };
  await walk(new URL("client/", ROOT), "client/");
  await walk(new URL("protocol/", ROOT), "protocol/");
  files.sort();
  const parts: string[] = [];
  for (const f of files) {
    // Line endings do not change the bundle; a checkout with CRLF must not look stale.
    const text = (await Deno.readTextFile(new URL(f, ROOT))).replaceAll("\r\n", "\n");
    parts.push(`${f}\n${text.length}\n${text}`);
  }
  // The npm packages in the bundle, as the lock file pins them.
  const lock = JSON.parse(await Deno.readTextFile(new URL("deno.lock", ROOT)));
  const pinned = Object.keys(lock.npm ?? {}).filter((k) => /^(zod|bson)@/.test(k)).sort();
  parts.push(pinned.join("\n"));
  return await sha256(parts.join("\n"));
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

async function bun(args: string[]): Promise<void> {
  const r = await new Deno.Command("bun", { args, cwd: ROOT, stdout: "inherit", stderr: "inherit" })
    .output();
  if (!r.success) throw new Error(`bun ${args.join(" ")} failed`);
}

const STAMP = /<!-- sources: (\S+) -->/;

async function check(): Promise<void> {
  let built = "";
  try {
    built = await Deno.readTextFile(OUT);
  } catch {
    // Missing: reported below like a stale one.
  }
  const want = await sourceStamp();
  const have = built.match(STAMP)?.[1];
  if (have !== want) {
    console.error(
      "client/danmaku/dist/index.html is out of date with its sources: run `deno task bundle` and commit it.",
    );
    Deno.exit(1);
  }
  console.log("client/danmaku/dist/index.html is up to date");
}

async function build(): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "signaller-page-" });
  try {
    const entry = new URL("main.ts", HERE).pathname;
    const css = new URL("style.css", HERE).pathname;
    await bun(["build", entry, "--target", "browser", "--minify", "--outfile", `${tmp}/main.js`]);
    await bun(["build", css, "--minify", "--outdir", `${tmp}/css`]);
    // `</script` or `</style` inside the code would end the element early.
    const script = (await Deno.readTextFile(`${tmp}/main.js`)).trim().replaceAll(
      "</script",
      "<\\/script",
    );
    const style = (await Deno.readTextFile(`${tmp}/css/style.css`)).trim().replaceAll(
      "</style",
      "<\\/style",
    );
    const csp = [
      "default-src 'none'",
      `script-src 'sha256-${await sha256(script)}'`,
      `style-src 'sha256-${await sha256(style)}'`,
      // The signaller itself (any `?server=`), the video (MediaStreams), the inline icon.
      "connect-src 'self' ws: wss:",
      "media-src 'self' blob: mediastream:",
      "img-src 'self' data:",
      "base-uri 'none'",
      "form-action 'self'",
    ].join("; ");
    const template = await Deno.readTextFile(new URL("index.html", HERE));
    if (!template.includes("/*style*/") || !template.includes("/*script*/")) {
      throw new Error("index.html lost its /*style*/ or /*script*/ placeholder");
    }
    const page = template
      .replace("<!--csp-->", `<meta http-equiv="Content-Security-Policy" content="${csp}">`)
      // The whole element: a CSP hash covers every character between the tags.
      .replace(/<style>\s*\/\*style\*\/\s*<\/style>/, () => `<style>${style}</style>`)
      .replace(
        /<script type="module">\s*\/\*script\*\/\s*<\/script>/,
        () => `<script type="module">${script}</script>`,
      )
      .replace("<!doctype html>", `<!doctype html>\n<!-- sources: ${await sourceStamp()} -->`);
    await Deno.mkdir(new URL("dist/", HERE), { recursive: true });
    await Deno.writeTextFile(OUT, page);
    const gz = await gzipSize(page);
    console.log(
      `client/danmaku/dist/index.html: ${kb(page.length)} (${kb(gz)} gzipped), script ${
        kb(script.length)
      }, style ${kb(style.length)}`,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

async function gzipSize(text: string): Promise<number> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return (await new Response(stream).arrayBuffer()).byteLength;
}

function kb(n: number): string {
  return `${(n / 1024).toFixed(1)} KiB`;
}

if (Deno.args.includes("--check")) await check();
else await build();
