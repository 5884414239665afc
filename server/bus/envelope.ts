/**
 * The wire format of an {@linkcode Envelope} between nodes:
 * `origin \n header \n text`, where `origin` is the publishing node's id, the
 * header is the envelope without `text` as JSON (empty when there is nothing
 * else), and the text, already serialized JSON, follows verbatim — so a pubmsg
 * is neither re-encoded nor escaped. Without a text there is no second newline.
 *
 * @module
 */
import type { Envelope } from "./bus.ts";

/** Encodes `env` as published by the node `origin` (an id without a newline). */
export function encodeEnvelope(origin: string, env: Envelope): string {
  const { text, ...rest } = env;
  const header = Object.keys(rest).length === 0 ? "" : JSON.stringify(rest);
  return text === undefined ? `${origin}\n${header}` : `${origin}\n${header}\n${text}`;
}

/**
 * Decodes a published `payload`; null when the node `self` published it (it
 * delivered it locally already) or when it is garbled.
 */
export function decodeEnvelope(payload: string, self: string): Envelope | null {
  const i = payload.indexOf("\n");
  // The origin is compared before anything is parsed: a node skips its own messages cheaply.
  if (i < 0 || (i === self.length && payload.startsWith(self))) return null;
  const j = payload.indexOf("\n", i + 1);
  const header = j < 0 ? payload.slice(i + 1) : payload.slice(i + 1, j);
  let env: Envelope;
  try {
    env = header === "" ? {} : JSON.parse(header);
  } catch {
    return null;
  }
  if (j >= 0) env.text = payload.slice(j + 1);
  return env;
}
