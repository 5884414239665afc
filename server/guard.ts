/**
 * Connection accounting at the edge, shared by the runtime adapters: every
 * open WebSocket is counted against a per-address and a global limit before
 * its upgrade is accepted, and released when it closes. Over a limit the
 * upgrade is refused with an HTTP status (429 per address, 503 global) and a
 * log line, so one client cannot take the descriptors and memory of all.
 */
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

/** Options of {@linkcode ConnectionGuard}. */
export interface GuardOptions {
  /** Open WebSockets in all (0: no limit). */
  maxConns: number;
  /** Open WebSockets per client address, IPv6 per /64 (0: no limit). */
  maxConnsPerIp: number;
  /** Take the client address from the last hop of `X-Forwarded-For`. */
  trustProxy: boolean;
  log: Logger;
  /** Counts refusals as `signaller_connections_refused_total{reason}`. */
  metrics?: Metrics;
}

/** An accepted upgrade: the client's address, and the release to call once when it closes. */
export interface Admission {
  /** The client's address (from `X-Forwarded-For` with `trustProxy`). */
  address: string;
  /** Gives the connection's place back; calling it again does nothing. */
  release(): void;
}

/** Refusals are logged at most this often, with the number left unlogged in between. */
const LOG_EVERY_MS = 1000;

/** Counts open WebSockets per client address and in all. */
export class ConnectionGuard {
  readonly #o: GuardOptions;
  readonly #perKey = new Map<string, number>();
  #total = 0;
  #loggedAt = 0;
  #unlogged = 0;

  constructor(options: GuardOptions) {
    this.#o = options;
  }

  /** Open WebSockets counted now. */
  get open(): number {
    return this.#total;
  }

  /**
   * Admits one WebSocket upgrade of `req` from the socket peer
   * `socketAddress`: an {@linkcode Admission}, or the response refusing it.
   */
  admit(req: Request, socketAddress: string): Admission | Response {
    const o = this.#o;
    const address = o.trustProxy
      ? forwardedFor(req.headers.get("x-forwarded-for")) ?? socketAddress
      : socketAddress;
    const key = addressKey(address);
    const mine = this.#perKey.get(key) ?? 0;
    // Per address first: one noisy client gets 429 even when the node is also full.
    if (o.maxConnsPerIp > 0 && mine >= o.maxConnsPerIp) {
      return this.#refuse(429, "ip", address, `${mine} connections from this address`);
    }
    if (o.maxConns > 0 && this.#total >= o.maxConns) {
      return this.#refuse(503, "global", address, `${this.#total} connections on this node`);
    }
    this.#perKey.set(key, mine + 1);
    this.#total++;
    let released = false;
    return {
      address,
      release: () => {
        if (released) return;
        released = true;
        this.#total--;
        const n = (this.#perKey.get(key) ?? 1) - 1;
        if (n <= 0) this.#perKey.delete(key);
        else this.#perKey.set(key, n);
      },
    };
  }

  #refuse(status: 429 | 503, reason: "ip" | "global", address: string, why: string): Response {
    const o = this.#o;
    o.metrics?.count(o.metrics.refused, reason);
    const now = Date.now();
    if (now - this.#loggedAt >= LOG_EVERY_MS) {
      o.log.warn("connection refused", {
        status,
        reason,
        address,
        limit: reason === "ip" ? o.maxConnsPerIp : o.maxConns,
        // Refusals since the last line, not logged one by one during a flood.
        unlogged: this.#unlogged,
      });
      this.#loggedAt = now;
      this.#unlogged = 0;
    } else {
      this.#unlogged++;
    }
    return new Response(`too many connections: ${why}\n`, {
      status,
      headers: { "content-type": "text/plain", "retry-after": "10" },
    });
  }
}

/**
 * The last hop of an `X-Forwarded-For` header: the address the nearest proxy
 * saw. Earlier hops are whatever the client wrote, so they are never trusted.
 */
export function forwardedFor(header: string | null): string | undefined {
  if (header === null) return undefined;
  const last = header.slice(header.lastIndexOf(",") + 1).trim();
  // `[v6]:port` and `v4:port` forms some proxies write: the address alone.
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(last);
  if (bracketed) return bracketed[1];
  const v4port = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(last);
  if (v4port) return v4port[1];
  return last.length > 0 && last.length <= 64 ? last : undefined;
}

/**
 * The key an address is counted under: an IPv4 address as it is (also when
 * IPv4-mapped), an IPv6 address by its /64 — one subscriber's prefix, inside
 * which a client may pick any number of addresses.
 */
export function addressKey(address: string): string {
  const a = address.toLowerCase();
  if (!a.includes(":")) return a;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(a);
  if (mapped) return mapped[1];
  const groups = expandIpv6(a.split("%")[0]);
  return groups === undefined ? a : `${groups.slice(0, 4).join(":")}::/64`;
}

/** The eight groups of an IPv6 address, or undefined when it is not one. */
function expandIpv6(a: string): string[] | undefined {
  const halves = a.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] === "" ? [] : halves[0].split(":");
  const tail = halves.length === 2 && halves[1] !== "" ? halves[1].split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return groups.map((g) => g.replace(/^0+(?=.)/, ""));
}
