/**
 * Assertions on what the server sends: exact key sets, server-assigned ids and
 * timestamps. Replies are checked by `expectOk` / `expectError` in `client.ts`.
 *
 * @example
 * ```ts
 * import { assertKeys, assertObjectId, assertTs } from "./asserts.ts";
 *
 * const r = await a.ok(`/privmsg ${b.id} hi`);
 * assertKeys(r, ["id", "ts"], "privmsg reply");
 * assertObjectId(r.id);
 * assertTs(r.ts);
 * ```
 * @module
 */
import assert from "node:assert/strict";
import type { Msg } from "./client.ts";

/** Asserts the keys of `obj` are exactly `keys` (order ignored). */
export function assertKeys(obj: Msg, keys: string[], what = "object"): void {
  assert.deepEqual(
    Object.keys(obj).sort(),
    [...keys].sort(),
    `${what}: unexpected keys in ${JSON.stringify(obj)}`,
  );
}

/** A server-assigned message id: a BSON ObjectId in lowercase hex. */
export function assertObjectId(id: unknown, what = "id"): void {
  assert.equal(typeof id, "string", `${what} must be a string`);
  assert.match(id as string, /^[0-9a-f]{24}$/, `${what} must be a lowercase ObjectId`);
}

/** A plausible server timestamp (ms since epoch, within a minute of now). */
export function assertTs(ts: unknown, what = "ts"): void {
  assert.equal(typeof ts, "number", `${what} must be a number`);
  assert.ok(Math.abs((ts as number) - Date.now()) < 60_000, `${what} ${ts} is not near now`);
}
