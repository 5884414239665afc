/**
 * Facts about the machine and the software the report's header gives, and
 * the limits of this machine the run adapts to (open files, load).
 * @module
 */
import { ROOT } from "./paths.ts";
import { run } from "./process.ts";

/** The first line a command prints, or "unavailable". */
export async function version(cmd: string[]): Promise<string> {
  try {
    const r = await run(cmd, { timeoutMs: 20_000 });
    return (r.stdout || r.stderr).split("\n")[0].trim();
  } catch {
    return "unavailable";
  }
}

function pkgVersion(name: string): string {
  try {
    return JSON.parse(Deno.readTextFileSync(`${ROOT}/node_modules/${name}/package.json`)).version;
  } catch {
    return "not installed";
  }
}

/** The open-files hard limit of this process (the bench's servers inherit it). */
export function hardFileLimit(): number {
  try {
    const m = Deno.readTextFileSync("/proc/self/limits").match(/Max open files\s+\d+\s+(\d+)/);
    return m ? Number(m[1]) : 1024;
  } catch {
    return 1024;
  }
}

/** The 1, 5 and 15 minute load averages. */
export function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "unknown";
  }
}

/** Cores, CPU model, memory and OS in one line. */
export async function machine(): Promise<string> {
  let cpu = "unknown CPU";
  let mem = "";
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    cpu = info.match(/model name\s*:\s*(.*)/)?.[1] ?? cpu;
    const kb = Number(Deno.readTextFileSync("/proc/meminfo").match(/MemTotal:\s+(\d+)/)?.[1]);
    mem = `${(kb / 1024 / 1024).toFixed(0)} GiB RAM`;
  } catch { /* not Linux */ }
  return `${navigator.hardwareConcurrency} cores (${cpu}), ${mem}, Linux ${Deno.osRelease()}, ${(await version(
    ["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"],
  ))}`;
}

/** Versions of Signaller (with its git revision) and of everything the run measured against. */
export async function versions(
  has: { bun: boolean; node: boolean; redis: string | null },
): Promise<Record<string, string>> {
  const git = await run(["git", "describe", "--always", "--dirty"]).catch(() => null);
  return {
    signaller: `${JSON.parse(Deno.readTextFileSync(`${ROOT}/package.json`)).version} (${
      git?.stdout.trim() || "?"
    })`,
    deno: Deno.version.deno,
    bun: has.bun ? await version(["bun", "--version"]) : "absent",
    node: has.node ? await version(["node", "--version"]) : "absent",
    redis: has.redis ?? "absent",
    "y-webrtc": pkgVersion("y-webrtc"),
    peer: pkgVersion("peer"),
    "C compiler": await version(["cc", "--version"]),
  };
}
