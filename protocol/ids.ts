/**
 * Peer and channel ids: BSON ObjectIds as 24 lowercase hex digits.
 *
 * Clients make their peer ids here without the `bson` package, which would
 * more than double the browser bundle: the ObjectId layout (4 bytes of
 * seconds, then 8 random bytes instead of a process id and a counter). The
 * server makes its own ids (messages, sessions) with `bson` (`server/ids.ts`).
 */

const HEX24 = /^[0-9a-fA-F]{24}$/;

/** A new id in the ObjectId layout: the time in seconds, then 64 random bits. */
export function newId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  new DataView(bytes.buffer).setUint32(0, Math.floor(Date.now() / 1000));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether `s` is a peer id: 24 hex digits, any case. */
export function isPeerId(s: string): boolean {
  return s.length === 24 && HEX24.test(s);
}

/** Whether `s` is a channel id: `#` and 24 hex digits, any case. */
export function isChannelId(s: string): boolean {
  return s.length === 25 && s[0] === "#" && HEX24.test(s.slice(1));
}

/** A new channel id, e.g. for a stream's chat: `#` + a fresh ObjectId. */
export function newChannelId(): string {
  return "#" + newId();
}
