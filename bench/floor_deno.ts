/**
 * The Deno floor: a minimal `Deno.upgradeWebSocket` server whose fan-out is a
 * plain loop sending each marked message to every open socket, one frame per
 * recipient. No parsing, no JSON, no batching — what a naive room server
 * on Deno costs. The sender is in the set too, so its copy is its ack.
 * Anything else ("hello") gets "ok", so the generator knows the socket is in.
 *
 * Run: `deno run -A bench/floor_deno.ts --port 0 --host 127.0.0.1`
 * @module
 */
import { floorArgs } from "./floor_args.ts";

const { host, port } = floorArgs(Deno.args);
const sockets = new Set<WebSocket>();

Deno.serve({
  hostname: host,
  port,
  onListen(addr) {
    console.log(`floor listening on ws://${addr.hostname}:${addr.port}/`);
  },
}, (req) => {
  if (req.headers.get("upgrade") !== "websocket") return new Response("floor\n");
  const { socket, response } = Deno.upgradeWebSocket(req);
  socket.onopen = () => sockets.add(socket);
  socket.onclose = () => sockets.delete(socket);
  socket.onmessage = (e) => {
    const msg = e.data;
    if (typeof msg === "string" && msg.charCodeAt(0) === 126 /* ~ */) {
      for (const s of sockets) s.send(msg);
    } else {
      socket.send("ok");
    }
  };
  return response;
});
