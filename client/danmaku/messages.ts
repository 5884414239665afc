/**
 * What the page says through the signaller, as JSON in message texts:
 * danmaku and the live state in `/pubmsg` (to the whole stream), relay-tree
 * coordination in `/privmsg` (between a viewer and the broadcaster). Anything
 * from the network is `safeParse`d; a text that is not ours is plain chat.
 */
import * as z from "zod/mini";

/** How a comment moves: across the video, or held at its top or bottom. */
export type DanmakuMode = "scroll" | "top" | "bottom";

/** Longest danmaku, in characters. */
export const MAX_DANMAKU = 100;

/** The colours offered in the composer (any `#rrggbb` is accepted from the wire). */
export const PALETTE: readonly { name: string; value: string }[] = [
  { name: "White", value: "#ffffff" },
  { name: "Red", value: "#ff5470" },
  { name: "Orange", value: "#ffa94d" },
  { name: "Yellow", value: "#ffe066" },
  { name: "Green", value: "#63e6be" },
  { name: "Blue", value: "#74c0fc" },
  { name: "Purple", value: "#b197fc" },
];

const Danmaku = z.object({
  danmaku: z.object({
    text: z.string().check(z.minLength(1), z.maxLength(MAX_DANMAKU)),
    color: z.string().check(z.regex(/^#[0-9a-f]{6}$/i)),
    mode: z.enum(["scroll", "top", "bottom"]),
  }),
});

/** A danmaku as sent in `/pubmsg`. */
export type Danmaku = z.infer<typeof Danmaku>["danmaku"];

const Live = z.object({ live: z.boolean() });
const Reset = z.object({ relay: z.literal("reset") });

/** A message to the whole stream: a danmaku, plain chat, the live state, or a tree reset. */
export type PublicMessage =
  | { kind: "danmaku"; danmaku: Danmaku }
  | { kind: "chat"; text: string }
  | { kind: "live"; live: boolean }
  | { kind: "reset" };

/** Reads a `/pubmsg` text; plain text (another client's chat) is a white scrolling comment. */
export function parsePublic(text: string): PublicMessage {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { kind: "chat", text: text.slice(0, MAX_DANMAKU) };
  }
  const d = Danmaku.safeParse(v);
  if (d.success) return { kind: "danmaku", danmaku: d.data.danmaku };
  const l = Live.safeParse(v);
  if (l.success) return { kind: "live", live: l.data.live };
  if (Reset.safeParse(v).success) return { kind: "reset" };
  return { kind: "chat", text: text.slice(0, MAX_DANMAKU) };
}

/** The `/pubmsg` text of a danmaku. */
export function danmakuText(d: Danmaku): string {
  return JSON.stringify({ danmaku: d });
}

const id = z.string().check(z.regex(/^[0-9a-f]{24}$/));

/**
 * Relay-tree messages, `/privmsg` between a viewer and the broadcaster (the
 * tree's coordinator), and from the coordinator to a parent:
 * - `want` (viewer → coordinator): give me a parent; `lost` names the one that went away;
 * - `playing` (viewer → coordinator): the stream plays here, I can feed others;
 * - `parent` (coordinator → viewer): take the stream from `parent`, `depth` hops from the source;
 * - `feed` (coordinator → a viewer): send the stream to `child`.
 */
const Relay = z.discriminatedUnion("relay", [
  z.object({ relay: z.literal("want"), lost: z.optional(id) }),
  z.object({ relay: z.literal("playing") }),
  z.object({ relay: z.literal("parent"), parent: id, depth: z.number(), live: z.boolean() }),
  z.object({ relay: z.literal("feed"), child: id }),
]);

/** A relay-tree message. */
export type RelayMessage = z.infer<typeof Relay>;

/** Reads a `/privmsg` text as a relay message; undefined if it is none. */
export function parseRelay(text: string): RelayMessage | undefined {
  if (!text.startsWith('{"relay"')) return undefined;
  try {
    const r = Relay.safeParse(JSON.parse(text));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}
