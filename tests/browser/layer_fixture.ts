/**
 * Loaded into a blank page by `layer_test.ts`: the danmaku layer alone, the
 * size of the desktop player, with the page's own style sheet. `globalThis.dm`
 * feeds it comments on a schedule and checks, at every frame, that no two
 * comments on screen overlap.
 */
import css from "../../client/danmaku/style.css" with { type: "text" };
import { type Comment, DanmakuLayer } from "../../client/danmaku/layer.ts";

/** What the test can see and do in the page. */
export interface LayerFixture {
  /** Pairs of comments seen overlapping, with when. */
  overlaps: string[];
  /** Frames checked. */
  frames: number;
  /** Most comments on screen at once. */
  peak: number;
  counts(): { shown: number; dropped: number; waiting: number };
  /** Adds `total` comments, one every `everyMs`; resolves when the last was added. */
  run(total: number, everyMs: number): Promise<void>;
  /** Positions of the comments on screen, by text. */
  positions(): Record<string, number>;
  pause(): void;
  resume(): void;
}

const style = document.createElement("style");
style.textContent = css;
document.head.append(style);
const root = document.createElement("div");
root.className = "danmaku";
root.style.cssText = "position:absolute;left:0;top:0;width:864px;height:486px;background:#000";
document.body.append(root);
const layer = new DanmakuLayer(root);

// Deterministic "random" lengths, colours and modes (a small LCG).
let seed = 42;
const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
const WORDS = ["so", "good", "wow", "this", "stream", "is", "amazing", "lol", "hello", "again"];

let added = 0;
function next(): Comment {
  const words = Array.from({ length: 1 + rand(6) }, () => WORDS[rand(WORDS.length)]);
  const modes = ["scroll", "scroll", "scroll", "scroll", "top", "bottom"] as const;
  return {
    text: `${added++} ${words.join(" ")}`,
    color: "#ffffff",
    mode: modes[rand(modes.length)],
    own: rand(20) === 0,
  };
}

const fx: LayerFixture = {
  overlaps: [],
  frames: 0,
  peak: 0,
  counts: () => ({ ...layer.counts, waiting: added - layer.counts.shown - layer.counts.dropped }),
  run(total, everyMs) {
    return new Promise((resolve) => {
      let n = 0;
      const t = setInterval(() => {
        layer.add(next());
        if (++n >= total) {
          clearInterval(t);
          resolve();
        }
      }, everyMs);
    });
  },
  positions() {
    const out: Record<string, number> = {};
    for (const el of root.querySelectorAll<HTMLElement>(".dm")) {
      out[el.textContent!] = el.getBoundingClientRect().left;
    }
    return out;
  },
  pause: () => layer.pause(),
  resume: () => layer.resume(),
};

/** The part of a comment that can be seen: inside the layer, and not faded out. */
function visible(el: HTMLElement): DOMRect | undefined {
  if (el.style.visibility === "hidden" || Number(getComputedStyle(el).opacity) === 0) return;
  const r = el.getBoundingClientRect();
  const box = root.getBoundingClientRect();
  const left = Math.max(r.left, box.left);
  const right = Math.min(r.right, box.right);
  return right - left > 0.5 ? new DOMRect(left, r.top, right - left, r.height) : undefined;
}

function check(): void {
  const rects = [...root.querySelectorAll<HTMLElement>(".dm")]
    .map((el) => ({ text: el.textContent!, r: visible(el) }))
    .filter((x): x is { text: string; r: DOMRect } => x.r !== undefined);
  fx.frames++;
  fx.peak = Math.max(fx.peak, rects.length);
  for (let i = 0; i < rects.length; i++) {
    for (let j = i + 1; j < rects.length; j++) {
      const a = rects[i].r;
      const b = rects[j].r;
      // Half a pixel of slack for sub-pixel rounding.
      const x = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (x > 0.5 && y > 0.5) {
        const at = (r: DOMRect) => `${r.left.toFixed(1)}..${r.right.toFixed(1)}@${r.top}`;
        fx.overlaps.push(`"${rects[i].text}" ${at(a)} / "${rects[j].text}" ${at(b)}`);
      }
    }
  }
  requestAnimationFrame(check);
}
requestAnimationFrame(check);

(globalThis as unknown as { dm: LayerFixture }).dm = fx;
