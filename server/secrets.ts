/** Secrets: hashing and the one constant-time comparison used for keys and tokens. */

const encoder = new TextEncoder();

/** SHA-256 of a string, as hex. */
export async function sha256(s: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(s)));
  // One flat string: a `+=` loop would keep 32 pieces alive per stored hash (a rope).
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Compares `given` with the secret `expected` in time that depends on neither's content. */
export function sameSecret(given: string, expected: string): boolean {
  const x = encoder.encode(given), y = encoder.encode(expected);
  let diff = x.length ^ y.length;
  for (let i = 0; i < y.length; i++) diff |= (x[i] ?? 0) ^ y[i];
  return diff === 0;
}

/** A resume token: 192 random bits, base64url. */
export function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
}
