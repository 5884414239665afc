/**
 * The live-stream page at `GET /`: one self-contained HTML file (script and
 * style inlined), built from `client/danmaku/` by `deno task bundle` and
 * committed, so no build runs at start. Imported as text, it is embedded in
 * the single binary by `bun build --compile` and `deno compile` alike.
 */
import page from "../client/danmaku/dist/index.html" with { type: "text" };

const body = new TextEncoder().encode(page);
const etag = `"${page.match(/<!-- sources: (\S+) -->/)?.[1]?.slice(0, 27) ?? body.length}"`;

/** Answers `GET /` (and `HEAD /`) with the page; 304 when the browser has this version. */
export function servePage(req: Request): Response {
  const headers = {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-cache",
    etag,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  };
  if (req.headers.get("if-none-match") === etag) {
    return new Response(null, { status: 304, headers });
  }
  return new Response(req.method === "HEAD" ? null : body, { headers });
}
