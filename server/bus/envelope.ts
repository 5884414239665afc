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
  const header = headerOf(env);
  return env.text === undefined ? `${origin}\n${header}` : `${origin}\n${header}\n${env.text}`;
}

/** The envelope without `text` as JSON, empty when nothing else is set. */
function headerOf(env: Envelope): string {
  const { text: _, ...rest } = env;
  return Object.keys(rest).length === 0 ? "" : JSON.stringify(rest);
}

/**
 * Encodes several envelopes `origin` publishes to one topic, in order, as one
 * payload: `origin \n *`, then for each `\n header \n length \n text` (the
 * text's length in UTF-16 units) or `\n header \n -` without a text. The
 * header `*` is never JSON, so a payload of one envelope cannot be taken for
 * a batch, and a text may hold anything, newlines included.
 */
export function encodeBatch(origin: string, envs: readonly Envelope[]): string {
  let out = `${origin}\n*`;
  for (const env of envs) {
    const header = headerOf(env);
    out += env.text === undefined
      ? `\n${header}\n-`
      : `\n${header}\n${env.text.length}\n${env.text}`;
  }
  return out;
}

/**
 * Decodes a published `payload`, one envelope or a batch: none when the node
 * `self` published it, null when it is garbled (a batch is taken whole or not
 * at all).
 */
export function decodeEnvelopes(payload: string, self: string): Envelope[] | null {
  const i = payload.indexOf("\n");
  if (i < 0) return null;
  if (i === self.length && payload.startsWith(self)) return [];
  if (payload.charCodeAt(i + 1) !== 42 /* "*" */) {
    const env = decodeEnvelope(payload, self);
    return env === null ? null : [env];
  }
  const out: Envelope[] = [];
  let p = i + 2;
  while (p < payload.length) {
    if (payload.charCodeAt(p) !== 10) return null;
    const h = payload.indexOf("\n", p + 1);
    if (h < 0) return null;
    const env = parseHeader(payload.slice(p + 1, h));
    const l = payload.indexOf("\n", h + 1);
    const length = l < 0 ? payload.slice(h + 1) : payload.slice(h + 1, l);
    if (env === null) return null;
    if (length === "-") {
      p = l < 0 ? payload.length : l;
    } else {
      const n = Number(length);
      if (l < 0 || !/^\d+$/.test(length) || l + 1 + n > payload.length) return null;
      env.text = payload.slice(l + 1, l + 1 + n);
      p = l + 1 + n;
    }
    out.push(env);
  }
  return out;
}

/** A header as {@linkcode headerOf} writes it; null when it is not one. */
function parseHeader(header: string): Envelope | null {
  if (header === "") return {};
  try {
    const env: unknown = JSON.parse(header);
    return typeof env === "object" && env !== null && !Array.isArray(env) ? env as Envelope : null;
  } catch {
    return null;
  }
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
