/**
 * A small HTTP/1.1 server over `Deno.listen` (or `Deno.listenTls`) for the
 * Deno adapter, in the shape of `Deno.serve` and `Deno.upgradeWebSocket`.
 * It exists for two limits `Deno.serve` lacks: a request head (and the TLS
 * handshake before it) must arrive within a deadline, else the connection is
 * closed — `Deno.serve` holds a half-sent request forever — and an upgraded
 * connection is read by {@linkcode ServerWebSocket}, which refuses an
 * oversized frame by its header instead of reading it whole.
 *
 * It speaks what the server's routes need: requests with no body or a
 * `Content-Length` body, responses with a known length, keep-alive and
 * pipelining, the WebSocket opening handshake.
 */
import { ServerWebSocket, type ServerWebSocketOptions } from "./deno_websocket.ts";

/** Options of {@linkcode serveHttp}. */
export interface HttpServeOptions {
  port: number;
  hostname: string;
  /** PEM certificate and key: serve TLS. */
  cert?: string;
  key?: string;
  /** Time a connection has for each request head, the TLS handshake included, ms. */
  headerTimeoutMs: number;
  onListen?: (addr: { hostname: string; port: number }) => void;
  /** Reports a handler's error (answered 500) or a failing accept; stderr by default. */
  onError?: (error: unknown) => void;
}

/** What the handler learns of the connection. */
export interface ServeInfo {
  remoteAddr: Deno.NetAddr;
}

/** Answers one request; a WebSocket upgrade returns the response of {@linkcode upgradeWebSocket}. */
export type HttpHandler = (req: Request, info: ServeInfo) => Response | Promise<Response>;

/** A listening server. */
export interface HttpServer {
  readonly addr: Deno.NetAddr;
  /**
   * Stops accepting, closes connections waiting for a request (open
   * WebSockets get 1001) and resolves when every connection has ended.
   */
  shutdown(): Promise<void>;
}

/** Thrown by {@linkcode upgradeWebSocket} for a request that is no valid upgrade: answered 400. */
export class UpgradeError extends Error {}

/** Largest request head, bytes (431 beyond). */
const MAX_HEAD = 16 * 1024;
/** Largest request body, bytes (413 beyond). */
const MAX_BODY = 1024 * 1024;
const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const REASONS: Record<number, string> = {
  200: "OK",
  204: "No Content",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
};

/** The connection of each request being handled, for {@linkcode upgradeWebSocket}. */
const connections = new WeakMap<Request, Deno.Conn>();
/** The upgrade behind each response {@linkcode upgradeWebSocket} returned. */
const upgrades = new WeakMap<Response, { socket: ServerWebSocket; key: string }>();

/**
 * Accepts the WebSocket upgrade of `req` (a request {@linkcode serveHttp}
 * handed over): the socket, and the response the handler must return for the
 * handshake to happen. Throws {@linkcode UpgradeError} for a request that is
 * no valid upgrade.
 */
export function upgradeWebSocket(
  req: Request,
  options: ServerWebSocketOptions,
): { socket: ServerWebSocket; response: Response } {
  const conn = connections.get(req);
  if (conn === undefined) throw new TypeError("not a request of this server");
  const h = req.headers;
  const key = h.get("sec-websocket-key") ?? "";
  if (
    req.method !== "GET" ||
    !hasToken(h.get("upgrade"), "websocket") ||
    !hasToken(h.get("connection"), "upgrade") ||
    h.get("sec-websocket-version") !== "13" ||
    !/^[A-Za-z0-9+/]{22}==$/.test(key)
  ) {
    throw new UpgradeError("not a valid WebSocket upgrade");
  }
  const socket = new ServerWebSocket(conn, options);
  const response = new Response(null, { status: 200 });
  upgrades.set(response, { socket, key });
  return { socket, response };
}

/** Serves `handler` on a new listener; `onListen` is called once it listens. */
export function serveHttp(o: HttpServeOptions, handler: HttpHandler): HttpServer {
  const listener = o.cert !== undefined && o.key !== undefined
    ? Deno.listenTls({ port: o.port, hostname: o.hostname, cert: o.cert, key: o.key })
    : Deno.listen({ port: o.port, hostname: o.hostname });
  const addr = listener.addr as Deno.NetAddr;
  const onError = o.onError ?? ((e: unknown) => console.error(e));
  const scheme = o.cert !== undefined ? "https" : "http";
  /** Connections waiting for a request head: closed at shutdown. */
  const waiting = new Set<Deno.Conn>();
  const sockets = new Set<ServerWebSocket>();
  const tasks = new Set<Promise<void>>();
  let stopping = false;

  async function connection(conn: Deno.Conn): Promise<void> {
    try {
      // Ends with the connection: its requests, or the WebSocket one of them opened.
      await requests(conn);
    } catch {
      // A reset, a TLS failure or a deadline: the connection is over.
    } finally {
      waiting.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed (by a deadline, or by the socket).
      }
    }
  }

  /**
   * Answers the connection's requests until it ends, or one is a WebSocket
   * upgrade: then the socket's run, which ends with the connection. The
   * requests' objects are gone once this returns: an open socket holds none.
   */
  async function requests(conn: Deno.Conn): Promise<void> {
    const remoteAddr = conn.remoteAddr as Deno.NetAddr;
    let buf: Uint8Array<ArrayBuffer> = new Uint8Array(0);
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
    while (!stopping) {
      waiting.add(conn);
      const head = await deadline(conn, o.headerTimeoutMs, () => readHead(conn, buf));
      waiting.delete(conn);
      if (head === null) return;
      buf = head.rest;
      const req = parseRequest(head.text, scheme, addr);
      if (typeof req === "number") {
        await respond(conn, error(req), false, o);
        return;
      }
      let body: Uint8Array<ArrayBuffer> | undefined;
      if (req.length > 0) {
        const read = await deadline(
          conn,
          o.headerTimeoutMs,
          () => readBody(conn, buf, req.length),
        );
        if (read === null) return;
        [body, buf] = read;
      }
      const request = toRequest(req, body);
      if (request === undefined) {
        await respond(conn, error(400), false, o);
        return;
      }
      connections.set(request, conn);
      let res: Response;
      try {
        res = await handler(request, { remoteAddr });
      } catch (e) {
        if (e instanceof UpgradeError) res = error(400, e.message);
        else {
          onError(e);
          res = error(500);
        }
      }
      const upgrade = upgrades.get(res);
      if (upgrade !== undefined) {
        const { socket, key } = upgrade;
        sockets.add(socket);
        try {
          await deadline(conn, o.headerTimeoutMs, async () =>
            writeAll(
              conn,
              latin1(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n" +
                  `connection: Upgrade\r\nsec-websocket-accept: ${await acceptKey(key)}\r\n\r\n`,
              ),
            ));
        } catch (e) {
          // Unstarted: close() ends it and reports the close.
          forget(socket, sockets);
          throw e;
        }
        // The socket owns the connection from here, with what came after the head.
        return run(socket, buf, sockets);
      }
      const keep = req.keepAlive && !stopping;
      if (!(await respond(conn, res, keep, o, req.method === "HEAD"))) return;
    }
  }

  const accepting = (async () => {
    let lastError = 0;
    while (!stopping) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (stopping || e instanceof Deno.errors.BadResource) return;
        // Out of descriptors, say: report it now and then, and let connections end.
        if (Date.now() - lastError > 10_000) {
          lastError = Date.now();
          onError(e);
        }
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const t: Promise<void> = connection(conn).finally(() => tasks.delete(t));
      tasks.add(t);
    }
  })();

  o.onListen?.({ hostname: addr.hostname, port: addr.port });
  return {
    addr,
    async shutdown() {
      if (stopping) return;
      stopping = true;
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      await accepting;
      for (const c of waiting) {
        try {
          c.close();
        } catch {
          // Already closed.
        }
      }
      for (const s of sockets) s.close(1001, "server shutting down");
      await Promise.all([...tasks]);
    },
  };
}

/**
 * Runs an open socket until its connection ends. Apart from the request loop,
 * so what the socket's run holds on to is the socket and nothing of the requests.
 */
function run(
  socket: ServerWebSocket,
  initial: Uint8Array,
  sockets: Set<ServerWebSocket>,
): Promise<void> {
  return socket.start(initial).finally(() => forget(socket, sockets));
}

/** Closes a socket whose connection ended (or never opened) and drops it from `sockets`. */
function forget(socket: ServerWebSocket, sockets: Set<ServerWebSocket>): void {
  socket.close();
  sockets.delete(socket);
}

/** A parsed request head. */
interface Head {
  method: string;
  target: string;
  headers: Headers;
  keepAlive: boolean;
  /** Content-Length of the body (0: none). */
  length: number;
  url: string;
}

/** Runs `fn`, closing `conn` if it has not finished within `ms` (it then rejects). */
async function deadline<T>(conn: Deno.Conn, ms: number, fn: () => Promise<T>): Promise<T> {
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }, ms);
  try {
    return await fn();
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reads up to the end of a request head: its text (Latin-1) and the bytes
 * after it; null when the connection ends first or the head is too long.
 */
async function readHead(
  conn: Deno.Conn,
  start: Uint8Array<ArrayBuffer>,
): Promise<{ text: string; rest: Uint8Array<ArrayBuffer> } | null> {
  let buf = start;
  let scanned = 0;
  while (true) {
    const end = indexOfHeadEnd(buf, Math.max(0, scanned - 3));
    if (end >= 0) return { text: latin1Decode(buf.subarray(0, end)), rest: buf.slice(end + 4) };
    scanned = buf.length;
    if (buf.length >= MAX_HEAD) {
      await respondRaw(conn, 431);
      return null;
    }
    const chunk = new Uint8Array(Math.min(4096, MAX_HEAD - buf.length + 4));
    const n = await conn.read(chunk);
    if (n === null) return null;
    const b = new Uint8Array(buf.length + n);
    b.set(buf);
    b.set(chunk.subarray(0, n), buf.length);
    buf = b;
  }
}

/** Reads a body of `length` bytes: the body and the bytes after it; null if the connection ends. */
async function readBody(
  conn: Deno.Conn,
  start: Uint8Array<ArrayBuffer>,
  length: number,
): Promise<[Uint8Array<ArrayBuffer>, Uint8Array<ArrayBuffer>] | null> {
  const body = new Uint8Array(length);
  let have = Math.min(length, start.length);
  body.set(start.subarray(0, have));
  const rest = start.slice(have);
  while (have < length) {
    const n = await conn.read(body.subarray(have));
    if (n === null) return null;
    have += n;
  }
  return [body, rest];
}

/** Parses a request head, or the status refusing it. */
function parseRequest(text: string, scheme: string, addr: Deno.NetAddr): Head | number {
  const lines = text.split("\r\n");
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.([01])$/.exec(lines[0]);
  if (!m) return 400;
  const headers = new Headers();
  for (let i = 1; i < lines.length; i++) {
    const h = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/.exec(lines[i]);
    if (!h) return 400;
    try {
      headers.append(h[1], h[2]);
    } catch {
      return 400;
    }
  }
  if (headers.has("transfer-encoding")) return 501;
  const cl = headers.get("content-length");
  let length = 0;
  if (cl !== null) {
    if (!/^\d{1,16}$/.test(cl)) return 400;
    length = Number(cl);
    if (length > MAX_BODY) return 413;
  }
  const [, method, target, minor] = m;
  const fallback = `${
    addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname
  }:${addr.port}`;
  let url: string;
  try {
    if (target.startsWith("/") || target === "*") {
      const host = headers.get("host") ?? fallback;
      let base: URL;
      try {
        base = new URL(`${scheme}://${host}/`);
      } catch {
        base = new URL(`${scheme}://${fallback}/`);
      }
      url = new URL(target === "*" ? "/" : target, base).href;
    } else {
      url = new URL(target).href;
    }
  } catch {
    return 400;
  }
  const connection = headers.get("connection");
  const keepAlive = minor === "1"
    ? !hasToken(connection, "close")
    : hasToken(connection, "keep-alive");
  return { method, target, headers, keepAlive, length, url };
}

function toRequest(h: Head, body: Uint8Array<ArrayBuffer> | undefined): Request | undefined {
  try {
    return new Request(h.url, {
      method: h.method,
      headers: h.headers,
      body: h.method === "GET" || h.method === "HEAD" ? undefined : body,
    });
  } catch {
    // A method the Request constructor refuses (CONNECT, TRACE), say.
    return undefined;
  }
}

/** Writes `res`; resolves to whether the connection stays open for another request. */
async function respond(
  conn: Deno.Conn,
  res: Response,
  keepAlive: boolean,
  o: HttpServeOptions,
  head = false,
): Promise<boolean> {
  const body = res.body === null ? new Uint8Array(0) : new Uint8Array(await res.arrayBuffer());
  let text = `HTTP/1.1 ${res.status} ${res.statusText || REASONS[res.status] || "Status"}\r\n`;
  for (const [k, v] of res.headers) {
    if (k !== "content-length" && k !== "connection" && k !== "transfer-encoding") {
      text += `${k}: ${v}\r\n`;
    }
  }
  text +=
    `content-length: ${body.length}\r\nconnection: ${keepAlive ? "keep-alive" : "close"}\r\n` +
    `date: ${new Date().toUTCString()}\r\n\r\n`;
  const headBytes = latin1(text);
  const out = head ? headBytes : join(headBytes, body);
  await deadline(conn, o.headerTimeoutMs, () => writeAll(conn, out));
  return keepAlive;
}

/** Answers a request that could not be read; the connection closes after it. */
async function respondRaw(conn: Deno.Conn, status: number): Promise<void> {
  const text = `${REASONS[status]}\n`;
  await writeAll(
    conn,
    latin1(
      `HTTP/1.1 ${status} ${REASONS[status]}\r\ncontent-type: text/plain\r\n` +
        `content-length: ${text.length}\r\nconnection: close\r\n\r\n${text}`,
    ),
  ).catch(() => {});
}

function error(status: number, message = REASONS[status] ?? "error"): Response {
  return new Response(`${message}\n`, { status, headers: { "content-type": "text/plain" } });
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + WS_GUID));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/** Whether a comma-separated header value holds `token` (case-insensitive). */
function hasToken(value: string | null, token: string): boolean {
  return value !== null && value.split(",").some((t) => t.trim().toLowerCase() === token);
}

function indexOfHeadEnd(b: Uint8Array, from: number): number {
  for (let i = from; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

function latin1(text: string): Uint8Array {
  const b = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) b[i] = text.charCodeAt(i) & 0xff;
  return b;
}

function latin1Decode(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 4096) {
    s += String.fromCharCode(...b.subarray(i, Math.min(b.length, i + 4096)));
  }
  return s;
}

function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
