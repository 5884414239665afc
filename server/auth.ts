/** Signed peer tokens (JWT, HS256) and short-lived TURN credentials. */
import { jwtVerify } from "jose";
import type { IceServer } from "./hub/mod.ts";

const encoder = new TextEncoder();

/**
 * A verifier for `descp` tokens: a JWT signed with `secret` (HS256) whose
 * `sub` is the peer id; `exp` is honoured and `admin: true` grants admin.
 */
export function jwtAuth(secret: string) {
  const key = encoder.encode(secret);
  return async (token: string | undefined, id: string): Promise<{ admin: boolean } | null> => {
    if (token === undefined) return null;
    try {
      const { payload } = await jwtVerify(token, key, { algorithms: ["HS256"], subject: id });
      return { admin: payload.admin === true };
    } catch {
      return null;
    }
  };
}

/** How long TURN credentials stay valid, seconds. */
export const TURN_TTL_S = 3600;

/**
 * ICE servers for a peer: the STUN URLs as they are, and the TURN URLs with
 * credentials in the coturn REST-API form (`username` = expiry:id,
 * `credential` = base64 HMAC-SHA1 of it under the shared secret).
 */
export function iceServers(stun: string[] = [], turn: string[] = [], secret?: string) {
  const hmac = secret === undefined ? undefined : crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-1" },
    false,
    ["sign"],
  );
  return async (id: string): Promise<IceServer[]> => {
    const out: IceServer[] = stun.length > 0 ? [{ urls: stun }] : [];
    if (turn.length === 0) return out;
    if (hmac === undefined) return [...out, { urls: turn }];
    const username = `${Math.floor(Date.now() / 1000) + TURN_TTL_S}:${id}`;
    const mac = new Uint8Array(
      await crypto.subtle.sign("HMAC", await hmac, encoder.encode(username)),
    );
    return [...out, { urls: turn, username, credential: btoa(String.fromCharCode(...mac)) }];
  };
}
