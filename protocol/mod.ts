/**
 * The Signaller protocol: the slash-command grammar (client → server), the
 * typed JSON replies and events (server → client), the numeric codes and the
 * id helpers. Pure and runtime-free: it runs in browsers, Deno and Bun.
 *
 * @example
 * ```ts
 * import { formatCommand, parseCommand, parseServerFrame } from "./mod.ts";
 *
 * const frame = formatCommand("join", ["#65a1f0c2e4b0a1b2c3d4e5f6", "s3cret"]);
 * const parsed = parseCommand(frame); // { ok: true, command: { cmd: "join", ... } }
 * const [reply] = parseServerFrame('{"type":"ok","cmd":"quit","data":{"channel":"#..."}}');
 * ```
 * @module
 */
export * from "./codes.ts";
export * from "./grammar.ts";
export * from "./ids.ts";
export * from "./limits.ts";
export * from "./messages.ts";

/** Version of the protocol this module implements. */
export const PROTOCOL_VERSION = 1;
