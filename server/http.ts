/**
 * The HTTP routes next to the socket: health, metrics, the page at `/`, and
 * the routes of the front-ends that have their own.
 */
import process from "node:process";
import type { Frontend } from "./frontends/frontend.ts";
import type { Hub } from "./hub/mod.ts";
import { servePage } from "./page.ts";

/** Answers a plain HTTP request (anything but a WebSocket upgrade). */
export async function handleHttp(
  req: Request,
  hub: Hub,
  frontends: readonly Frontend[] = [],
): Promise<Response> {
  const url = new URL(req.url);
  for (const f of frontends) {
    const res = f.http?.(req, url);
    if (res !== undefined) return await res;
  }
  const path = url.pathname;
  if (req.method !== "GET" && req.method !== "HEAD") {
    return new Response("method not allowed\n", { status: 405 });
  }
  switch (path) {
    case "/healthz":
      return (await hub.healthy())
        ? new Response("ok\n", { headers: { "content-type": "text/plain" } })
        : new Response("store unreachable\n", {
          status: 503,
          headers: { "content-type": "text/plain" },
        });
    case "/metrics":
      return new Response(hub.metrics.render(memory()), {
        headers: { "content-type": "text/plain; version=0.0.4" },
      });
    case "/":
      return servePage(req);
    default:
      return new Response("not found\n", { status: 404 });
  }
}

/** The process's memory in bytes: resident, the script engine's heap, what it holds outside. */
function memory(): Record<string, number> {
  const m = process.memoryUsage();
  return {
    memory_resident_bytes: m.rss,
    memory_heap_total_bytes: m.heapTotal,
    memory_heap_used_bytes: m.heapUsed,
    memory_external_bytes: m.external,
  };
}

/** Whether a WebSocket upgrade from `origin` is allowed by the `--allow-origin` list. */
export function originAllowed(origin: string | null, allowed: string[] | undefined): boolean {
  return allowed === undefined || (origin !== null && allowed.includes(origin));
}
