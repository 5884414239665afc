/**
 * The test harness's runtime selection: a bad `SIGNALLER_TEST_RUNTIME` fails
 * at load instead of registering no black-box test, and a missing Bun is said
 * in one line (or fails in CI). Each case loads `tests/support/server.ts` in a
 * child process with its own environment and PATH.
 */
import assert from "node:assert/strict";

const SERVER = new URL("../support/server.ts", import.meta.url).href;

/** Runs `runtimes()` in a child Deno with `env` (CI and the selector unset unless given). */
async function runtimesIn(
  env: Record<string, string>,
  opts: { hideBun?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const base = Deno.env.toObject();
  delete base.CI;
  delete base.SIGNALLER_TEST_RUNTIME;
  let dir: string | undefined;
  if (opts.hideBun) {
    // A PATH that has no `bun`; the child Deno is started by its absolute path.
    dir = await Deno.makeTempDir({ prefix: "signaller-nobun-" });
    base.PATH = dir;
  }
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { runtimes } from ${JSON.stringify(SERVER)};` +
        `console.log(JSON.stringify(runtimes()));`,
      ],
      clearEnv: true,
      env: { ...base, ...env },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    if (dir !== undefined) await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("SIGNALLER_TEST_RUNTIME with an unknown value fails at load", async () => {
  const r = await runtimesIn({ SIGNALLER_TEST_RUNTIME: "node" });
  assert.notEqual(r.code, 0, `runtimes() returned ${r.stdout}`);
  assert.match(r.stderr, /SIGNALLER_TEST_RUNTIME=node is not a runtime/);
});

Deno.test("SIGNALLER_TEST_RUNTIME=deno keeps only Deno", async () => {
  const r = await runtimesIn({ SIGNALLER_TEST_RUNTIME: "deno" });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), ["deno"]);
});

Deno.test("without bun outside CI: one line says the Bun runs are skipped", async () => {
  const r = await runtimesIn({}, { hideBun: true });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assert.deepEqual(lines, [
    "Bun runs of the black-box tests skipped: `bun` is not on the PATH.",
    JSON.stringify(["deno"]),
  ]);
});

Deno.test("without bun, CI=true fails at load", async () => {
  const r = await runtimesIn({ CI: "true" }, { hideBun: true });
  assert.notEqual(r.code, 0, `runtimes() returned ${r.stdout}`);
  assert.match(r.stderr, /`bun` is not on the PATH/);
});

Deno.test("without bun, SIGNALLER_TEST_RUNTIME=bun fails at load", async () => {
  const r = await runtimesIn({ SIGNALLER_TEST_RUNTIME: "bun" }, { hideBun: true });
  assert.notEqual(r.code, 0, `runtimes() returned ${r.stdout}`);
  assert.match(r.stderr, /SIGNALLER_TEST_RUNTIME=bun but `bun` is not on the PATH/);
});
