/** Unit tests of the hashing and comparison of secrets. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { sameSecret, sha256 } from "../../server/secrets.ts";

Deno.test("sha256 is the hex SHA-256 of the UTF-8 bytes", async () => {
  for (const s of ["", "s3cret", "#65a1f0c2e4b0a1b2c3d4e5f7\nkey", "🐱 ключ"]) {
    assert.equal(await sha256(s), createHash("sha256").update(s, "utf8").digest("hex"), s);
  }
});

Deno.test("sameSecret accepts only the identical string", () => {
  assert.equal(sameSecret("s3cret", "s3cret"), true);
  assert.equal(sameSecret("", ""), true);
  for (const wrong of ["", "s3cre", "s3cret!", "S3cret", "s3creT", "x3cret", "s3cret\0"]) {
    assert.equal(sameSecret(wrong, "s3cret"), false, JSON.stringify(wrong));
  }
  assert.equal(sameSecret("s3cret", ""), false);
});

Deno.test("sameSecret compares hashes and non-ASCII secrets", async () => {
  const h = await sha256("token");
  assert.equal(sameSecret(h, await sha256("token")), true);
  assert.equal(sameSecret(await sha256("tokeN"), h), false);
  assert.equal(sameSecret("ключ🐱", "ключ🐱"), true);
  assert.equal(sameSecret("ключ🐶", "ключ🐱"), false);
});
