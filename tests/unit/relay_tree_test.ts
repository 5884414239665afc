/**
 * The relay tree's bookkeeping (`client/danmaku/tree.ts`): fan-out, breadth
 * first, only playing viewers feed others, orphans re-attach, and a viewer is
 * never attached inside its own subtree.
 */
import assert from "node:assert/strict";
import { RelayTree } from "../../client/danmaku/tree.ts";

/** Adds viewers in order; each plays as soon as it is attached. */
function grow(tree: RelayTree, ids: string[]): void {
  for (const id of ids) {
    tree.want(id);
    for (const a of tree.assign()) tree.setPlaying(a.child, true);
  }
}

Deno.test("relay tree: the root feeds k viewers, the next ones go one level down", () => {
  const tree = new RelayTree("root", 2);
  grow(tree, ["a", "b", "c", "d", "e", "f", "g"]);
  assert.deepEqual(tree.childrenOf("root"), ["a", "b"]);
  assert.deepEqual(tree.childrenOf("a"), ["c", "d"]);
  assert.deepEqual(tree.childrenOf("b"), ["e", "f"]);
  assert.equal(tree.parentOf("g"), "c");
  assert.equal(tree.depthOf("g"), 3);
  for (const { id } of tree.walk()) assert.ok(tree.childrenOf(id).length <= 2);
});

Deno.test("relay tree: k=1 makes a chain", () => {
  const tree = new RelayTree("root", 1);
  grow(tree, ["a", "b", "c"]);
  assert.deepEqual([tree.parentOf("a"), tree.parentOf("b"), tree.parentOf("c")], [
    "root",
    "a",
    "b",
  ]);
  assert.equal(tree.depthOf("c"), 3);
});

Deno.test("relay tree: only a viewer that plays gets children", () => {
  const tree = new RelayTree("root", 1);
  tree.want("a");
  assert.deepEqual(tree.assign(), [{ child: "a", parent: "root", depth: 1 }]);
  tree.want("b");
  assert.deepEqual(tree.assign(), [], "a does not play yet");
  assert.deepEqual(tree.waiting, ["b"]);
  tree.setPlaying("a", true);
  assert.deepEqual(tree.assign(), [{ child: "b", parent: "a", depth: 2 }]);
});

Deno.test("relay tree: when a relaying viewer leaves, its children re-attach elsewhere", () => {
  const tree = new RelayTree("root", 1);
  grow(tree, ["a", "b", "c"]);
  assert.deepEqual(tree.remove("b"), ["c"]);
  assert.deepEqual(tree.assign(), [{ child: "c", parent: "a", depth: 2 }]);
  assert.equal(tree.has("b"), false);
  assert.equal(tree.size, 2);
});

Deno.test("relay tree: a viewer that lost its parent keeps its subtree, never goes under it", () => {
  const tree = new RelayTree("root", 2);
  grow(tree, ["a", "b", "c", "d"]); // root → a, b; a → c, d
  tree.want("a"); // a's link to the root broke
  assert.deepEqual(tree.childrenOf("a"), ["c", "d"], "a keeps its children");
  // With the root passed over, c and d (playing, free slots) are below a: b takes it.
  const [move] = tree.assign((id) => id === "root");
  assert.deepEqual(move, { child: "a", parent: "b", depth: 2 });
  assert.equal(tree.depthOf("c"), 3);
});

Deno.test("relay tree: a viewer with nowhere to go waits, and skipped nodes get no children", () => {
  const tree = new RelayTree("root", 1);
  grow(tree, ["a"]);
  tree.want("b");
  assert.deepEqual(tree.assign((id) => id === "a"), [], "a is skipped");
  assert.deepEqual(tree.assign(), [{ child: "b", parent: "a", depth: 2 }]);
  // An orphan whose ancestors are all full waits.
  tree.setPlaying("b", false);
  tree.want("c");
  assert.deepEqual(tree.assign(), []);
  assert.equal(tree.depthOf("c"), undefined);
});

Deno.test("relay tree: fan-out below one is refused", () => {
  assert.throws(() => new RelayTree("root", 0), RangeError);
});
