/**
 * The Bun floor: the least a Bun WebSocket server can do for fan-out. Every
 * socket subscribes to one topic and every marked message is handed to
 * `server.publish` as is — no parsing, no JSON, no protocol. The sender is
 * subscribed too, so its own copy is its ack (one extra send per message).
 * Anything else ("hello") gets "ok", which the load generator uses to know the
 * socket is subscribed.
 *
 * Run: `bun bench/floor_bun.ts --port 0 --host 127.0.0.1`
 * @module
 */
import { floorArgs } from "./floor_args.ts";

// The few Bun APIs used here, declared so `deno check bench/` passes without bun-types.
interface BunSocket {
  subscribe(topic: string): void;
  send(data: string): number;
}
interface BunServer {
  hostname: string;
  port: number;
  upgrade(req: Request): boolean;
  publish(topic: string, data: string): number;
}
declare const Bun: {
  argv: string[];
  serve(options: {
    hostname: string;
    port: number;
    fetch(req: Request, server: BunServer): Response | undefined;
    websocket: {
      open(ws: BunSocket): void;
      message(ws: BunSocket, msg: string | Uint8Array): void;
    };
  }): BunServer;
};

const { host, port } = floorArgs(Bun.argv.slice(2));

const server = Bun.serve({
  hostname: host,
  port,
  fetch(req, srv) {
    if (srv.upgrade(req)) return undefined;
    return new Response("floor\n");
  },
  websocket: {
    open(ws) {
      ws.subscribe("t");
    },
    message(ws, msg) {
      if (typeof msg === "string" && msg.charCodeAt(0) === 126 /* ~ */) server.publish("t", msg);
      else ws.send("ok");
    },
  },
});
console.log(`floor listening on ws://${server.hostname}:${server.port}/`);
