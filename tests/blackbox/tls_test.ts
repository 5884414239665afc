/**
 * `wss://`: with `--cert` and `--key` (or `SIGNALLER_CERT` and `SIGNALLER_KEY`)
 * the server speaks TLS. The test makes a self-signed certificate with
 * `openssl` and connects with a client that trusts it.
 */
import assert from "node:assert/strict";
import { newId } from "../support/client.ts";
import { RawClient } from "../support/raw_ws.ts";
import { bbtest, type ServerHandle, startServer } from "../support/server.ts";
import { within } from "../support/wait.ts";

const HAVE_OPENSSL = (() => {
  try {
    return new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();
if (!HAVE_OPENSSL) {
  if (Deno.env.get("CI") === "true") throw new Error("CI=true: `openssl` is not on the PATH");
  console.log("TLS tests skipped: `openssl` is not on the PATH.");
}

/** A self-signed certificate for localhost and 127.0.0.1, in a fresh temporary directory. */
interface TestCert extends AsyncDisposable {
  cert: string;
  key: string;
  /** The certificate, PEM: what the client trusts. */
  pem: string;
}

async function selfSigned(): Promise<TestCert> {
  const dir = await Deno.makeTempDir({ prefix: "signaller-tls-" });
  const cert = `${dir}/cert.pem`;
  const key = `${dir}/key.pem`;
  const out = await new Deno.Command("openssl", {
    args: [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
      ...["-nodes", "-days", "1", "-subj", "/CN=localhost"],
      // Clients check the name they dialled against the SAN, not the CN.
      ...["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
      // A certificate marked as a CA is refused as a server's own (CaUsedAsEndEntity).
      ...["-addext", "basicConstraints=critical,CA:FALSE"],
      ...["-keyout", key, "-out", cert],
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    await Deno.remove(dir, { recursive: true });
    throw new Error(`openssl failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return {
    cert,
    key,
    pem: await Deno.readTextFile(cert),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Asserts `s` serves wss:// and https:// with `pem`, and answers a /descp over TLS. */
async function assertServesTls(s: ServerHandle, pem: string): Promise<void> {
  assert.match(s.stdout()[0], /^signaller listening on wss:\/\/127\.0\.0\.1:\d+\/$/);
  assert.ok(s.url.startsWith("wss://"), s.url);
  using ws = await RawClient.connect(s.url, { caCerts: [pem] });
  const id = newId();
  await ws.sendText(`/descp ${JSON.stringify({ id, name: "tls" })}`);
  const r = await ws.reply();
  assert.equal(r.type, "ok", JSON.stringify(r));
  assert.equal(r.cmd, "descp");
  assert.equal(r.data.peer.id, id);
  await ws.sendText(`/whois ${id}`);
  assert.equal((await ws.reply()).data.online, true);
  using client = Deno.createHttpClient({ caCerts: [pem] });
  const h = await fetch(s.httpUrl + "/healthz", { client });
  assert.equal(h.status, 200);
  assert.equal((await h.text()).trim(), "ok");
}

bbtest("--cert and --key: the server speaks wss:// and answers /descp", async (rt) => {
  await using c = await selfSigned();
  await using s = await startServer({ runtime: rt, args: ["--cert", c.cert, "--key", c.key] });
  await assertServesTls(s, c.pem);
  // Plain ws:// to a TLS port gets no WebSocket.
  await assert.rejects(
    within(RawClient.connect(s.url.replace("wss:", "ws:")), 5000, "refusal"),
    (e: Error) => !/within/.test(e.message),
  );
}, { ignore: !HAVE_OPENSSL });

bbtest("SIGNALLER_CERT and SIGNALLER_KEY: the same from the environment", async (rt) => {
  await using c = await selfSigned();
  await using s = await startServer({
    runtime: rt,
    env: { SIGNALLER_CERT: c.cert, SIGNALLER_KEY: c.key },
  });
  await assertServesTls(s, c.pem);
}, { ignore: !HAVE_OPENSSL });
