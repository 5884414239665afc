/**
 * A micro-benchmark of the hub's relay path, without sockets: `pairs` peers
 * send `/privmsg` frames through the slash front-end to their partner over
 * fake connections, in memory mode. It times only the per-message work of the
 * core and the front-end (parse, ids, events, replies), for profiling
 * (`deno run -A --cpu-prof bench/hub_relay.ts`, `bun bench/hub_relay.ts`).
 *
 *     deno run -A bench/hub_relay.ts [--history 0] [--peerjs] [--n 400000]
 *
 * @module
 */
import { Hub } from "../server/hub/mod.ts";
import { MemoryStore } from "../server/store/memory.ts";
import { slash } from "../server/frontends/slash.ts";
import { peerjs } from "../server/frontends/peerjs.ts";
import process from "node:process";
import type { Connection } from "../server/hub/mod.ts";

const args = process.argv.slice(2);
const flag = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i < 0 ? def : Number(args[i + 1]);
};

const history = flag("--history", 100);
const n = flag("--n", 400_000);
const pairs = 50;
const usePeerjs = args.includes("--peerjs");

const hub = new Hub({
  store: new MemoryStore({ maxChannels: 100, retentionMs: 60_000, history }),
  rate: 0,
});
let received = 0;
const conn = (): Connection => ({
  send: () => void received++,
  close: () => {},
  bufferedAmount: 0,
  remoteAddress: "127.0.0.1",
});
const hex = (i: number) => i.toString(16).padStart(24, "0");
const text = "x".repeat(60);
const senders: { text(f: string): void }[] = [];
const frames: string[] = [];
for (let i = 0; i < pairs; i++) {
  const [a, b] = [hex(2 * i + 1), hex(2 * i + 2)];
  if (usePeerjs) {
    const fe = peerjs({ key: "peerjs", discovery: false, expireMs: 5000, aliveMs: 60_000 });
    const open = (id: string) => {
      const url = new URL(`ws://127.0.0.1/peerjs?key=peerjs&id=${id}&token=t${id}`);
      return fe.open(hub, conn(), url);
    };
    senders.push(open(a));
    open(b);
    frames.push(JSON.stringify({ type: "CANDIDATE", dst: b, payload: { candidate: text } }));
  } else {
    const sa = slash.open(hub, conn(), new URL("ws://127.0.0.1/")),
      sb = slash.open(hub, conn(), new URL("ws://127.0.0.1/"));
    sa.text(`/descp {"id":"${a}","name":"a"}`);
    sb.text(`/descp {"id":"${b}","name":"b"}`);
    senders.push(sa);
    frames.push(`/privmsg ${b} ${text}`);
  }
}
await new Promise((r) => setTimeout(r, 200));
received = 0;
const t0 = performance.now(), cpu0 = process.cpuUsage();
for (let k = 0; k < n; k++) {
  const i = k % pairs;
  senders[i].text(frames[i]);
  if (k % 10_000 === 0) await new Promise((r) => setTimeout(r, 0));
}
await new Promise((r) => setTimeout(r, 50));
const dt = performance.now() - t0, cpu = process.cpuUsage(cpu0);
// CPU time, not wall time: on a shared machine it is what the process itself spent.
const cpuUs = cpu.user + cpu.system;
console.log(
  `${usePeerjs ? "peerjs" : "slash"} history=${history}: ${n} relays in ${dt.toFixed(0)} ms, ` +
    `${(cpuUs / n).toFixed(2)} CPU-µs each, ${received} frames sent`,
);
await hub.shutdown();
process.exit(0);
