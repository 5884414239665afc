/**
 * Where the bench's files are: the repository it measures, `bench/`, and
 * `bench/.build/` for the generator binary and raw results.
 * @module
 */

/** The repository root: servers and tools run from here. */
export const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** `bench/`. */
export const BENCH = `${ROOT}/bench`;
/** Build output and raw results (git-ignored). */
export const BUILD = `${BENCH}/.build`;

/** Whether a file or directory exists. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
