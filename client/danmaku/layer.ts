/**
 * The danmaku layer over the video: comments fly across it (or hold at its
 * top or bottom) in lanes, and never overlap. All scrolling comments move at
 * one speed, so a comment that entered a lane after another can never catch
 * up with it; a lane takes a new comment once the last one has cleared its
 * entry by a gap. Comments that find no lane wait a little in a queue (your
 * own first) and are dropped from the video (not from the chat) when the
 * stream is busier than the screen.
 */
import type { DanmakuMode } from "./messages.ts";

/** A comment to show. */
export interface Comment {
  text: string;
  color: string;
  mode: DanmakuMode;
  /** Written here: outlined, and ahead of the queue. */
  own?: boolean;
}

/** Options of {@linkcode DanmakuLayer}. */
export interface DanmakuLayerOptions {
  /** Time a scrolling comment takes to cross an empty layer's width, ms; 7000 unless given. */
  crossMs?: number;
  /** Time a top or bottom comment stays, ms; 4500 unless given. */
  holdMs?: number;
  /** How long a comment may wait for a lane before it is dropped, ms; 6000 unless given. */
  maxWaitMs?: number;
}

interface Flying {
  el: HTMLElement;
  anim: Animation;
  width: number;
  /** Pixels per ms (scrolling comments). */
  speed: number;
}

interface Lane {
  /** The last scrolling comment that entered the lane. */
  tail: Flying | undefined;
  /** The top or bottom comment held in the lane. */
  held: Flying | undefined;
}

interface Waiting {
  comment: Comment;
  since: number;
}

/** Space between two comments in a lane, px. */
const GAP = 24;

/** Renders comments into `root` (an element laid over the video). */
export class DanmakuLayer {
  #root: HTMLElement;
  #crossMs: number;
  #holdMs: number;
  #maxWaitMs: number;
  #lanes: Lane[] = [];
  /** Lanes that fit the layer now (more may still hold comments after it shrank). */
  #usable = 1;
  #laneHeight = 32;
  #width = 0;
  #queue: Waiting[] = [];
  #flying = new Set<Flying>();
  #paused = false;
  #shown = 0;
  #dropped = 0;
  #frame: number | undefined;

  /** A layer drawing into `root`, sized by it (it follows resizes). */
  constructor(root: HTMLElement, options: DanmakuLayerOptions = {}) {
    this.#root = root;
    this.#crossMs = options.crossMs ?? 7000;
    this.#holdMs = options.holdMs ?? 4500;
    this.#maxWaitMs = options.maxWaitMs ?? 6000;
    new ResizeObserver(() => this.#measure()).observe(root);
    this.#measure();
  }

  /** Whether the comments are frozen. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Comments on screen now. */
  get visible(): number {
    return this.#flying.size;
  }

  /** Comments shown so far, and those dropped because no lane came free in time. */
  get counts(): { shown: number; dropped: number } {
    return { shown: this.#shown, dropped: this.#dropped };
  }

  /** Shows `comment` as soon as a lane is free. */
  add(comment: Comment): void {
    const w = { comment, since: performance.now() };
    if (comment.own) {
      // Your own comment goes ahead of everyone else's.
      const i = this.#queue.findIndex((q) => !q.comment.own);
      this.#queue.splice(i < 0 ? this.#queue.length : i, 0, w);
    } else {
      this.#queue.push(w);
    }
    this.#drain();
  }

  /** Freezes every comment where it is; new ones wait. */
  pause(): void {
    this.#paused = true;
    for (const f of this.#flying) f.anim.pause();
  }

  /** Sets the comments moving again. */
  resume(): void {
    this.#paused = false;
    for (const f of this.#flying) f.anim.play();
    this.#drain();
  }

  /** Removes every comment, on screen and waiting. */
  clear(): void {
    for (const f of [...this.#flying]) f.anim.cancel();
    this.#queue = [];
  }

  #measure(): void {
    const { width, height } = this.#root.getBoundingClientRect();
    // Text scales with the video: readable on a phone, and enough lanes (15 on a
    // desktop player) for a few hundred comments a minute.
    const font = Math.round(Math.min(28, Math.max(14, height / 22)));
    this.#root.style.setProperty("--dm-font", `${font}px`);
    this.#laneHeight = Math.round(font * 1.35);
    this.#width = width;
    const count = Math.max(1, Math.floor((height - 8) / this.#laneHeight));
    while (this.#lanes.length < count) this.#lanes.push({ tail: undefined, held: undefined });
    // Lanes that no longer fit keep their comments until they finish, but take no new ones.
    this.#lanes.length = Math.max(count, this.#lanes.findLastIndex((l) => l.tail || l.held) + 1);
    this.#usable = count;
  }

  #drain(): void {
    if (this.#paused) return;
    const now = performance.now();
    const left: Waiting[] = [];
    for (const w of this.#queue) {
      if (!w.comment.own && now - w.since > this.#maxWaitMs) {
        this.#dropped++;
        continue;
      }
      if (!this.#place(w.comment)) left.push(w);
    }
    this.#queue = left;
    if (this.#queue.length > 0 && this.#frame === undefined) {
      this.#frame = requestAnimationFrame(() => {
        this.#frame = undefined;
        this.#drain();
      });
    }
  }

  /** Puts `comment` in a free lane (lane `i` is `i` lane heights from the top); false if none is. */
  #place(comment: Comment): boolean {
    const el = document.createElement("div");
    el.className = `dm dm-${comment.mode}${comment.own ? " dm-own" : ""}`;
    el.textContent = comment.text;
    el.style.color = comment.color;
    el.style.visibility = "hidden";
    this.#root.append(el);
    const width = Math.min(el.offsetWidth, this.#width);
    const lane = comment.mode === "scroll"
      ? this.#scrollLane()
      : this.#heldLane(width, comment.mode === "bottom");
    if (lane === undefined) {
      el.remove();
      return false;
    }
    el.style.top = `${lane * this.#laneHeight + 4}px`;
    // Where the animation starts, also before its first frame (on a busy page the element can
    // be drawn once before the animation applies).
    if (comment.mode === "scroll") el.style.transform = `translateX(${this.#width}px)`;
    else el.style.opacity = "0";
    el.style.visibility = "";
    const speed = this.#speed();
    // `fill: "forwards"`: on a busy page the finish event (which removes the element) may come
    // a little late; until then the comment stays out of sight, never back at its start.
    const anim = comment.mode === "scroll"
      ? el.animate([{ transform: `translateX(${this.#width}px)` }, {
        transform: `translateX(${-width}px)`,
      }], { duration: (this.#width + width) / speed, easing: "linear", fill: "forwards" })
      // A held comment stays put, fading in and out; the animation is its pausable timer.
      : el.animate([{ opacity: 0 }, { opacity: 1, offset: 0.04 }, { opacity: 1, offset: 0.94 }, {
        opacity: 0,
      }], { duration: this.#holdMs, fill: "forwards" });
    const flying: Flying = { el, anim, width, speed };
    this.#shown++;
    this.#flying.add(flying);
    const slot = this.#lanes[lane];
    if (comment.mode === "scroll") slot.tail = flying;
    else slot.held = flying;
    const done = () => {
      el.remove();
      this.#flying.delete(flying);
      if (slot.tail === flying) slot.tail = undefined;
      if (slot.held === flying) slot.held = undefined;
      if (this.#queue.length > 0) this.#drain();
    };
    anim.onfinish = done;
    anim.oncancel = done;
    return true;
  }

  /** Pixels per ms every scrolling comment moves at. */
  #speed(): number {
    return Math.max(this.#width, 320) / this.#crossMs;
  }

  #scrollLane(): number | undefined {
    const speed = this.#speed();
    for (let i = 0; i < this.#usable; i++) {
      const lane = this.#lanes[i];
      const tail = lane.tail;
      // The tail has moved far enough for the new comment to enter behind it.
      if (tail && moved(tail) < tail.width + GAP) continue;
      // A held comment in the middle of the lane: enter only if we reach it after it is gone.
      if (lane.held) {
        const heldRight = (this.#width + lane.held.width) / 2;
        const reachMs = (this.#width - heldRight) / speed;
        if (reachMs < remaining(lane.held)) continue;
      }
      return i;
    }
    return undefined;
  }

  #heldLane(width: number, fromBottom: boolean): number | undefined {
    const left = (this.#width - width) / 2;
    for (let n = 0; n < this.#usable; n++) {
      const i = fromBottom ? this.#usable - 1 - n : n;
      const lane = this.#lanes[i];
      if (lane.held) continue;
      // The last scrolling comment must already be past the held one's left edge:
      // it only moves left, and any later one waits for the held comment (above).
      const tail = lane.tail;
      if (tail && this.#width - moved(tail) + tail.width + GAP > left) continue;
      return i;
    }
    return undefined;
  }
}

/** How far a scrolling comment has moved from its entry, px. */
function moved(f: Flying): number {
  return Number(f.anim.currentTime ?? Infinity) * f.speed;
}

/** Time left to a held comment, ms. */
function remaining(f: Flying): number {
  const total = Number(f.anim.effect?.getTiming().duration ?? 0);
  return total - Number(f.anim.currentTime ?? total);
}
