/**
 * The single binary (`deno task compile`, built with `bun build --compile`)
 * serves the same protocol: a short session against it. CI builds it first;
 * elsewhere the test is skipped, with one line saying so, until it is built.
 */
import assert from "node:assert/strict";
import { newChannel, peer } from "../support/client.ts";
import { binaryPath, startServer } from "../support/server.ts";

let built = true;
try {
  Deno.statSync(binaryPath());
} catch {
  built = false;
}
if (!built && Deno.env.get("CI") === "true") {
  throw new Error(`CI=true: the single binary ${binaryPath()} is missing (deno task compile)`);
}
if (!built) {
  console.warn(`skipping the single-binary test: ${binaryPath()} not built (deno task compile)`);
}

Deno.test({
  name: "[binary] the single binary describes, joins, relays and shuts down cleanly",
  ignore: !built,
  fn: async () => {
    const s = await startServer({ runtime: "binary" });
    try {
      await using a = await peer(s.url, { name: "a" });
      await using b = await peer(s.url, { name: "b" });
      const ch = newChannel();
      assert.equal((await a.ok(`/join ${ch}`)).created, true);
      await b.ok(`/join ${ch}`);
      await a.ok(`/pubmsg ${ch} from the binary`);
      assert.equal((await b.event("pubmsg")).text, "from the binary");
      await b.ok(`/privmsg ${a.id} v=0\r\n`);
      assert.equal((await a.event("privmsg")).text, "v=0\r\n");
      const health = await fetch(s.httpUrl + "/healthz");
      assert.equal(await health.text(), "ok\n");
    } finally {
      assert.equal(await s.stop(), 0, "SIGTERM exits 0");
    }
  },
});
