/**
 * Flags shared by the floor servers: `--port N` (0: any free port) and
 * `--host ADDR` (default 127.0.0.1: the bench never listens beyond loopback).
 * @module
 */

/** Listen address of a floor server. */
export interface FloorArgs {
  /** Interface to bind. */
  host: string;
  /** Port to bind; 0 lets the kernel choose. */
  port: number;
}

/**
 * Reads `--port` and `--host` from a runtime's argument list.
 *
 * @example
 * ```ts
 * const { host, port } = floorArgs(["--port", "0"]); // { host: "127.0.0.1", port: 0 }
 * ```
 */
export function floorArgs(args: string[]): FloorArgs {
  const out: FloorArgs = { host: "127.0.0.1", port: 0 };
  for (let i = 0; i < args.length - 1; i++) {
    if (args[i] === "--port") out.port = Number(args[i + 1]);
    if (args[i] === "--host") out.host = args[i + 1];
  }
  return out;
}
