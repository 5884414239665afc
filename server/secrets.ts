/**
 * Secrets and their hashes: the one place where a token, a key or the hash of
 * one is hashed and compared. Resume tokens and channel keys are stored only
 * as SHA-256 hashes; the admin token is compared as given.
 *
 * @module
 */

const encoder = new TextEncoder();

/** SHA-256 of a string's UTF-8 bytes, as 64 lowercase hex digits. */
export async function sha256(s: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(s)));
  // One flat string: a `+=` loop would keep 32 pieces alive per stored hash (a rope).
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Compares `given` with the secret (or secret hash) `expected` in time that
 * depends on neither's content, only on the length of `expected`: a mismatch
 * at the first character costs as much as one at the last.
 */
export function sameSecret(given: string, expected: string): boolean {
  let diff = given.length ^ expected.length;
  // Past the end of `given`, charCodeAt is NaN, which `^` treats as 0.
  for (let i = 0; i < expected.length; i++) diff |= given.charCodeAt(i) ^ expected.charCodeAt(i);
  return diff === 0;
}

/** A resume token: 192 random bits, base64url. */
export function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
}
