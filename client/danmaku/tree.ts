/**
 * The relay tree, as its coordinator (the broadcaster) keeps it: the
 * broadcaster feeds at most `fanout` viewers, and every further viewer is
 * attached to a viewer that already plays the stream and has a free slot.
 * Pure bookkeeping, no I/O: the page sends the assignments it returns.
 */

/** One attachment decided by {@linkcode RelayTree.assign}. */
export interface Assignment {
  child: string;
  parent: string;
  /** Hops from the broadcaster to `child` (1: fed by the broadcaster itself). */
  depth: number;
}

interface Node {
  parent: string | undefined;
  children: Set<string>;
  /** The stream plays there: it may feed others (the root always may). */
  playing: boolean;
}

/**
 * A tree of fan-out `fanout` rooted at the broadcaster. Viewers wait in
 * arrival order until a parent with a free slot plays the stream; a viewer
 * that loses its parent waits again, keeping its own children, and is never
 * attached inside its own subtree.
 */
export class RelayTree {
  /** The broadcaster's id. */
  readonly root: string;
  /** Children per node, at most. */
  readonly fanout: number;
  #nodes = new Map<string, Node>();
  /** Viewers without a parent, in the order they asked. */
  #waiting = new Set<string>();

  /** An empty tree under `root`. */
  constructor(root: string, fanout: number) {
    if (!Number.isInteger(fanout) || fanout < 1) throw new RangeError("fanout must be ≥ 1");
    this.root = root;
    this.fanout = fanout;
    this.#nodes.set(root, { parent: undefined, children: new Set(), playing: true });
  }

  /** Whether `id` is in the tree (attached or waiting). */
  has(id: string): boolean {
    return id !== this.root && this.#nodes.has(id);
  }

  /** The viewers in the tree, attached or waiting. */
  get size(): number {
    return this.#nodes.size - 1;
  }

  /** `id`'s parent, if attached. */
  parentOf(id: string): string | undefined {
    return this.#nodes.get(id)?.parent;
  }

  /** `id`'s children. */
  childrenOf(id: string): string[] {
    return [...this.#nodes.get(id)?.children ?? []];
  }

  /** Hops from the root to `id`; undefined while `id` (or an ancestor) waits. */
  depthOf(id: string): number | undefined {
    let depth = 0;
    for (let n = id; n !== this.root; depth++) {
      const p = this.#nodes.get(n)?.parent;
      if (p === undefined || depth > this.#nodes.size) return undefined;
      n = p;
    }
    return depth;
  }

  /** Viewers waiting for a parent, in order. */
  get waiting(): string[] {
    return [...this.#waiting];
  }

  /**
   * `id` asks for a parent: a new viewer joins the queue; an attached one is
   * detached first (its link broke). Its own children stay with it.
   */
  want(id: string): void {
    if (id === this.root) return;
    let node = this.#nodes.get(id);
    if (!node) {
      this.#nodes.set(id, node = { parent: undefined, children: new Set(), playing: false });
    }
    this.#detach(id, node);
    this.#waiting.add(id);
  }

  /** The stream plays at `id` (or stopped playing): it may feed others while it does. */
  setPlaying(id: string, playing: boolean): void {
    const node = this.#nodes.get(id);
    if (node && id !== this.root) node.playing = playing;
  }

  /** `id` left the stream; its children wait for a new parent. Returns them. */
  remove(id: string): string[] {
    const node = this.#nodes.get(id);
    if (!node || id === this.root) return [];
    this.#detach(id, node);
    this.#waiting.delete(id);
    this.#nodes.delete(id);
    const orphans = [...node.children];
    for (const c of orphans) {
      const child = this.#nodes.get(c);
      if (!child) continue;
      child.parent = undefined;
      child.playing = false;
      this.#waiting.add(c);
    }
    return orphans;
  }

  /**
   * Attaches every waiting viewer it can, in the order they asked, each to
   * the shallowest playing node with a free slot (breadth first, so the tree
   * stays as flat as `fanout` allows), passing over the nodes `skip` names.
   * Those with no place keep waiting.
   */
  assign(skip: (id: string) => boolean = () => false): Assignment[] {
    const out: Assignment[] = [];
    for (const child of [...this.#waiting]) {
      const found = this.#freeSlot(skip);
      if (!found) break;
      const node = this.#nodes.get(child)!;
      node.parent = found.parent;
      this.#nodes.get(found.parent)!.children.add(child);
      this.#waiting.delete(child);
      out.push({ child, parent: found.parent, depth: found.depth + 1 });
    }
    return out;
  }

  /** The nodes reachable from the root, breadth first, with their depth. */
  *walk(): Generator<{ id: string; depth: number; parent: string | undefined }> {
    const queue: [string, number][] = [[this.root, 0]];
    for (let i = 0; i < queue.length; i++) {
      const [id, depth] = queue[i];
      const node = this.#nodes.get(id)!;
      yield { id, depth, parent: node.parent };
      for (const c of node.children) queue.push([c, depth + 1]);
    }
  }

  #freeSlot(skip: (id: string) => boolean): { parent: string; depth: number } | undefined {
    // Only nodes reachable from the root are candidates: a waiting viewer's own
    // subtree is cut off from the root, so it can never become its own ancestor.
    for (const { id, depth } of this.walk()) {
      const node = this.#nodes.get(id)!;
      if (node.playing && node.children.size < this.fanout && !skip(id)) {
        return { parent: id, depth };
      }
    }
    return undefined;
  }

  #detach(id: string, node: Node): void {
    if (node.parent !== undefined) this.#nodes.get(node.parent)?.children.delete(id);
    node.parent = undefined;
    node.playing = false;
  }
}
