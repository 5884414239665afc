/**
 * The typed client's stream positions on their own: what a resume asks for,
 * which message events are duplicates, and how a stream the server did not
 * recover (or that started over) is taken up again. The same rules are
 * exercised against the real server in `recovery_test.ts`; the cases here
 * are those a server cannot be made to produce on cue (a duplicate).
 */
import assert from "node:assert/strict";
import type { EventOf, ReplyData } from "../../client/mod.ts";
import { StreamPositions } from "../../client/streams.ts";

const ME = "65a1f0c2e4b0a1b2c3d4e5f6";
const OTHER = "65a1f0c2e4b0a1b2c3d4e5f7";
const CH = "#65a1f0c2e4b0a1b2c3d4e5f8";
const CH2 = "#65a1f0c2e4b0a1b2c3d4e5f9";

function descp(extra: Partial<ReplyData<"descp">> = {}): ReplyData<"descp"> {
  return {
    peer: { id: ME, name: "me", meta: {} },
    resume: "tok",
    admin: false,
    channels: [],
    server: { name: "signaller", version: "1.0.0", node: "n1" },
    ...extra,
  };
}

function pub(seq: number | undefined, channel = CH): EventOf<"pubmsg"> {
  return { type: "pubmsg", id: "x", ts: 0, from: OTHER, channel, text: `c${seq}`, seq };
}

function priv(seq: number): EventOf<"privmsg"> {
  return { type: "privmsg", id: "x", ts: 0, from: OTHER, to: ME, text: `d${seq}`, seq };
}

/** The seqs of `events` that `p` takes as new, in order. */
function taken(p: StreamPositions, events: (EventOf<"pubmsg"> | EventOf<"privmsg">)[]): number[] {
  return events.filter((e) => p.accept(e)).map((e) => e.seq!);
}

Deno.test("since: nothing without positions (streams off); the inbox and each channel given that has one", () => {
  const p = new StreamPositions();
  assert.equal(p.since([CH]), undefined);
  p.described(descp({ channels: [] }), undefined);
  assert.equal(p.since([CH]), undefined, "a reply without inbox: streams are off");
  p.described(descp({ inbox: { epoch: "i1", seq: 4 } }), undefined);
  p.joined(CH, { epoch: "e1", seq: 7 });
  p.joined(CH2, undefined);
  assert.deepEqual(p.since([CH, CH2]), {
    inbox: { epoch: "i1", seq: 4 },
    channels: { [CH]: { epoch: "e1", seq: 7 } },
  });
  assert.deepEqual(taken(p, [pub(8), priv(5), priv(6)]), [8, 5, 6]);
  assert.deepEqual(p.since([CH]), {
    inbox: { epoch: "i1", seq: 6 },
    channels: { [CH]: { epoch: "e1", seq: 8 } },
  });
  assert.deepEqual(p.since([]), { inbox: { epoch: "i1", seq: 6 } }, "only the channels given");
  p.left(CH);
  assert.deepEqual(p.since([CH]), { inbox: { epoch: "i1", seq: 6 } });
});

Deno.test("an event whose seq is not above its stream's position is a duplicate; events without seq or stream are new", () => {
  const p = new StreamPositions();
  p.described(descp({ inbox: { epoch: "i1", seq: 0 } }), undefined);
  p.joined(CH, { epoch: "e1", seq: 10 });
  assert.deepEqual(taken(p, [pub(11), pub(12), pub(12), pub(11), pub(13)]), [11, 12, 13]);
  assert.deepEqual(taken(p, [priv(1), priv(2), priv(2), priv(3)]), [1, 2, 3]);
  assert.equal(p.accept(pub(undefined)), true, "streams off: no seq");
  assert.equal(p.accept(pub(3, CH2)), true, "a channel before its join reply");
  assert.equal(p.accept(pub(3, CH2)), true);
});

Deno.test("a resume: recovered streams keep their position (the replay follows), the others take the next event as it comes", () => {
  const p = new StreamPositions();
  p.described(descp({ inbox: { epoch: "i1", seq: 0 } }), undefined);
  p.joined(CH, { epoch: "e1", seq: 0 });
  p.joined(CH2, { epoch: "f1", seq: 0 });
  taken(p, [priv(1), priv(2), pub(1), pub(2), pub(5, CH2)]);
  const asked = p.since([CH, CH2])!;
  const got = p.described(
    descp({
      channels: [CH, CH2],
      inbox: { epoch: "i1", seq: 4 },
      recovered: { inbox: true, channels: { [CH]: true, [CH2]: false } },
    }),
    asked,
  );
  assert.deepEqual(got, { inbox: true, channels: { [CH]: true, [CH2]: false } });
  // The replay, then live events the server also held: each once.
  assert.deepEqual(taken(p, [priv(3), priv(4), pub(3), pub(2), pub(3), pub(4)]), [3, 4, 3, 4]);
  // CH2 was not recovered (a new epoch, say): its next event sets the position, whatever it is.
  assert.deepEqual(taken(p, [pub(2, CH2), pub(3, CH2), pub(2, CH2)]), [2, 3]);
  assert.deepEqual(p.since([CH2]), {
    inbox: { epoch: "i1", seq: 4 },
    channels: { [CH2]: { epoch: "f1", seq: 3 } },
  });
});

Deno.test("a resume whose inbox was not recovered takes the reply's position; channels the reply lacks are forgotten", () => {
  const p = new StreamPositions();
  p.described(descp({ inbox: { epoch: "i1", seq: 0 } }), undefined);
  p.joined(CH, { epoch: "e1", seq: 0 });
  taken(p, [priv(1), priv(2), priv(3)]);
  const asked = p.since([CH])!;
  const got = p.described(
    descp({
      channels: [],
      inbox: { epoch: "i2", seq: 1 },
      recovered: { inbox: false, channels: { [CH]: false } },
    }),
    asked,
  );
  assert.deepEqual(got, { inbox: false, channels: { [CH]: false } });
  assert.deepEqual(p.since([CH]), { inbox: { epoch: "i2", seq: 1 } });
  // Open: even an event at or below the reply's position (held back during the resume) is new.
  assert.deepEqual(taken(p, [priv(1), priv(2), priv(2)]), [1, 2]);
  // A server without `recovered` (streams turned off since): nothing was recovered.
  assert.deepEqual(p.described(descp({ channels: [] }), { inbox: { epoch: "i2", seq: 2 } }), {
    inbox: false,
    channels: {},
  });
  assert.equal(p.since([]), undefined);
});

Deno.test("a stream that started over (its history expired): seq 1 is new whatever the position, also when the client's own /pubmsg took it", () => {
  const p = new StreamPositions();
  p.joined(CH, { epoch: "e1", seq: 0 });
  assert.deepEqual(taken(p, [pub(1), pub(2), pub(3), pub(1), pub(2), pub(2)]), [1, 2, 3, 1, 2]);
  p.published(CH, 2);
  assert.deepEqual(taken(p, [pub(2), pub(3)]), [3], "an own seq within the epoch moves nothing");
  p.published(CH, 1);
  assert.deepEqual(taken(p, [pub(2), pub(3), pub(3)]), [2, 3]);
  // The epoch is stale now: the next resume asks with it and is told the stream was not recovered.
  assert.deepEqual(p.since([CH]), { channels: { [CH]: { epoch: "e1", seq: 3 } } });
  // A join reply (of a channel the client is in) names the new epoch.
  p.joined(CH, { epoch: "e2", seq: 3 });
  assert.deepEqual(p.since([CH]), { channels: { [CH]: { epoch: "e2", seq: 3 } } });
});

Deno.test("a join reply within the same epoch never moves the position back", () => {
  const p = new StreamPositions();
  p.joined(CH, { epoch: "e1", seq: 2 });
  taken(p, [pub(3), pub(4)]);
  p.joined(CH, { epoch: "e1", seq: 3 });
  assert.deepEqual(p.since([CH]), { channels: { [CH]: { epoch: "e1", seq: 4 } } });
  p.joined(CH, { epoch: "e1", seq: 6 });
  assert.deepEqual(taken(p, [pub(5), pub(6), pub(7)]), [7]);
});
