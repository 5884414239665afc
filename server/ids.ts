/**
 * Ids the server makes (message ids, session nonces, node ids): BSON
 * ObjectIds, unique across nodes without coordination — a process-random
 * part and a counter — and sortable by time.
 */
import { ObjectId } from "bson";

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const parts: string[] = new Array(12);

/** A new id: a BSON ObjectId as 24 lowercase hex digits. */
export function newId(): string {
  const bytes = ObjectId.generate();
  for (let i = 0; i < 12; i++) parts[i] = HEX[bytes[i]];
  // Joined into one flat string: a concatenated one keeps its pieces alive
  // (a rope) for as long as the id lives, in every session and message.
  return parts.join("");
}
