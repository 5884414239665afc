/**
 * The processes the bench runs: commands run to completion with a time limit,
 * and long-lived children (servers, CPU spinners) kept in one registry so that
 * every one of them is ended when the run ends or is interrupted. Also the
 * shell wrapper that raises the open-files limit and pins a process to a CPU.
 * @module
 */
import { ROOT } from "./paths.ts";

/** Output of a finished command. */
export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (from the repository root unless `cwd`), killed after `timeoutMs`. */
export async function run(
  cmd: string[],
  opts: { cwd?: string; timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<Output> {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd: opts.cwd ?? ROOT,
    env: opts.env,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(opts.timeoutMs ?? 120_000),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Whether a program is on the PATH. */
export async function which(bin: string): Promise<boolean> {
  try {
    return (await run(["sh", "-c", `command -v ${bin}`])).code === 0;
  } catch {
    return false;
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Wraps a command: open-files soft limit raised to the hard one, pinned to a CPU. */
export function wrap(cmd: string[], cpu: number | null): string[] {
  const pin = cpu === null ? [] : ["taskset", "-c", String(cpu)];
  // exec keeps the pid, so /proc/PID is the server itself, not a shell.
  return ["sh", "-c", 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', "sh", ...pin, ...cmd];
}

/** Children still running, ended by `killAll`. */
const live = new Set<Deno.ChildProcess>();

/** Spawns a long-lived child that `killAll` ends if it is still running. */
export function spawn(cmd: string[], opts: Deno.CommandOptions = {}): Deno.ChildProcess {
  const child = new Deno.Command(cmd[0], { ...opts, args: cmd.slice(1) }).spawn();
  live.add(child);
  return child;
}

/** Sends a signal to a child that may have exited already. */
export function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch { /* already gone */ }
}

/** Ends a child: SIGTERM, SIGKILL after 5 s, and forgets it once it has exited. */
export async function stop(child: Deno.ChildProcess): Promise<void> {
  kill(child, "SIGTERM");
  const t = setTimeout(() => kill(child, "SIGKILL"), 5000);
  await child.status;
  clearTimeout(t);
  live.delete(child);
}

/** Ends every child still running: SIGTERM, then SIGKILL after at most 5 s. */
export function killAll(): Promise<void> {
  // SIGTERM first: `timeout` (the spinners' parent) forwards it to its child;
  // SIGKILL would orphan the loop until its own time runs out.
  for (const c of live) kill(c, "SIGTERM");
  const rest = [...live];
  live.clear();
  return Promise.race([Promise.all(rest.map((c) => c.status)), sleep(5000)]).then(() => {
    for (const c of rest) kill(c, "SIGKILL");
  });
}

/**
 * One SCHED_IDLE busy loop per CPU, for the whole run. In a virtual machine an
 * idle vCPU halts, and waking it takes long enough to dominate a closed loop
 * whose two ends sit on two CPUs: the same server measured 2.0 M or 5.5 M
 * deliveries/s depending on whether the vCPUs happened to be awake. An
 * idle-class task never delays a runnable server or generator (they preempt it
 * at once) and its CPU time is not counted to them. `timeout` ends it even if
 * the bench dies.
 */
export async function startSpinners(cpus: number[], seconds: number): Promise<void> {
  if (!(await which("chrt"))) return;
  for (const cpu of cpus) {
    spawn([
      "chrt",
      "-i",
      "0",
      "taskset",
      "-c",
      String(cpu),
      "timeout",
      String(Math.ceil(seconds)),
      "sh",
      "-c",
      "while :; do :; done",
    ], { stdin: "null", stdout: "null", stderr: "null" });
  }
}
