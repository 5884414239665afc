/**
 * The single binary (`deno task compile`) carries the page: `GET /` serves
 * the committed build of `client/danmaku/` byte for byte, with no file next
 * to the binary. Skipped, with one line saying so, until the binary is built;
 * with `CI=true` a missing binary is an error.
 */
import assert from "node:assert/strict";
import { ROOT, startServer } from "./support.ts";

const binary = Deno.env.get("SIGNALLER_BINARY") ?? ROOT + "dist/signaller";
let built = true;
try {
  Deno.statSync(binary);
} catch {
  built = false;
}
if (!built && Deno.env.get("CI") === "true") {
  throw new Error(`CI=true: the single binary ${binary} is missing (deno task compile)`);
}
if (!built) console.warn(`skipping the binary page test: ${binary} not built (deno task compile)`);

Deno.test({
  name: "[binary] GET / serves the page embedded in the single binary",
  ignore: !built,
  fn: async () => {
    // Run from an empty directory: the page must come from inside the binary.
    const cwd = await Deno.makeTempDir({ prefix: "signaller-binary-" });
    await using server = await startServer({ command: [binary], cwd });
    const want = await Deno.readTextFile(ROOT + "client/danmaku/dist/index.html");
    const r = await fetch(server.httpUrl + "/");
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-type"), "text/html; charset=utf-8");
    const body = await r.text();
    assert.ok(
      body === want,
      "the binary's page differs from client/danmaku/dist/index.html: rebuild it (deno task compile)",
    );
    assert.match(body, /<title>Signaller Live<\/title>/);
    const etag = r.headers.get("etag");
    assert.ok(etag, "an ETag");
    const again = await fetch(server.httpUrl + "/", { headers: { "if-none-match": etag } });
    assert.equal(again.status, 304);
    await again.body?.cancel();
    await Deno.remove(cwd);
  },
});
