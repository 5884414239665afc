/** Peer and channel ids: BSON ObjectIds as 24 lowercase hex digits. */
import { ObjectId } from "bson";

const HEX24 = /^[0-9a-fA-F]{24}$/;

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const parts: string[] = new Array(12);

/** A new id, unique across server nodes and clients (a BSON ObjectId in hex). */
export function newId(): string {
  const bytes = ObjectId.generate();
  for (let i = 0; i < 12; i++) parts[i] = HEX[bytes[i]];
  // Joined into one flat string: a concatenated one keeps its pieces alive
  // (a rope) for as long as the id lives, in every session and message.
  return parts.join("");
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
