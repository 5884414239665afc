/**
 * Re-exports the test support modules for older imports (`./harness.ts`); new
 * tests import what they use from `tests/support/` directly: `server.ts`
 * (spawning the server, runtimes, `bbtest`), `client.ts` (the test client),
 * `raw_ws.ts` (the raw RFC 6455 client), `asserts.ts` and `wait.ts`.
 *
 * @module
 */
export * from "./support/asserts.ts";
export * from "./support/client.ts";
export * from "./support/raw_ws.ts";
export * from "./support/server.ts";
export * from "./support/wait.ts";
