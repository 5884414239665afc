/**
 * Limits the wire shows (PROTOCOL.md): sizes of fields and pages, which
 * commands count as messages for the rate limit, how many frames may wait.
 */
import type { CommandName } from "./grammar.ts";

/** Longest channel key, in characters. */
export const MAX_KEY = 128;
/** Longest peer name, in Unicode code points. */
export const MAX_NAME = 64;
/** Largest `meta` of a description, in bytes of JSON. */
export const MAX_META = 4096;
/** Replies of `/peers`, `/join` and `/whois #channel` list at most this many members. */
export const PAGE_SIZE = 500;
/**
 * Commands that count against the per-peer message rate (`--rate`, `--burst`);
 * every command counts against five times that.
 */
export const MESSAGE_COMMANDS: ReadonlySet<CommandName> = new Set<CommandName>([
  "privmsg",
  "pubmsg",
  "broadcast",
  "invite",
]);
/** Frames a connection may have waiting behind a slow command; more is a flood (close 4003). */
export const MAX_QUEUED_FRAMES = 256;
