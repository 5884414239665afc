/**
 * The fuzz figures of the report: `deno run -A bench/fuzz.ts [flags]` runs the
 * fuzz test (`tests/fuzz/fuzz_test.ts`, on every runtime it finds) with
 * `FUZZ_REPORT` set, so that each runtime's run, once every check of the test
 * has passed, leaves its counts; from them it prints the "Fuzz" section of
 * `bench/RESULTS.md`, and with `--write` puts it there (before "Soak"). The
 * fuzz is a robustness figure, not a speed one: it may run on a busy machine.
 *
 *   --frames N   frames each runtime's server must read (default: the test's, 100 000)
 *   --seed N     the PRNG seed (default: a random one, printed in the section)
 *   --write      replace (or add) the "Fuzz" section of bench/RESULTS.md
 * @module
 */
import type { FuzzFigures } from "../tests/fuzz/fuzz_test.ts";
import { fmtNum } from "./format.ts";
import { loadAverage, machine, version } from "./machine.ts";
import { BENCH, BUILD } from "./paths.ts";
import { run } from "./process.ts";
import { putSection } from "./report.ts";

const TEST = "tests/fuzz/fuzz_test.ts";

/** The flags after `name`, or undefined. */
function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** `101 × 1009, 3 × 4001`: the connections closed, by code. */
function closesCell(closes: Record<string, number>): string {
  const c = Object.entries(closes).map(([code, n]) => `${fmtNum(n)} × ${code}`);
  return c.length ? c.join(", ") : "none";
}

/** The section: how the figures were made, then one column per runtime. */
export function renderFuzz(
  figures: FuzzFigures[],
  about: { command: string; date: string; machine: string; versions: string; load: string },
): string {
  const rows: [string, (f: FuzzFigures) => string][] = [
    ["frames sent", (f) => fmtNum(f.sent)],
    ["read by the server", (f) => fmtNum(f.sent - f.dropped)],
    ["answered (`ok` or `error`)", (f) => fmtNum(f.replies)],
    ["closed the connection (count × code)", (f) => closesCell(f.closes)],
    ["sent behind a closing frame, never read", (f) => fmtNum(f.dropped)],
    ["events received (other connections' messages)", (f) => fmtNum(f.events)],
    ["connections", (f) => fmtNum(f.connections)],
    ["server log lines at level error", (f) => fmtNum(f.errorLogs)],
    ["crashes", () => "0"],
    ["fresh clients afterwards (join, `/pubmsg`, `/privmsg`)", () => "served"],
    ["exit code on SIGTERM", (f) => String(f.exitCode)],
    ["time (first connection to last answer)", (f) => `${(f.ms / 1000).toFixed(1)} s`],
  ];
  const name = (rt: string) => rt === "bun" ? "Bun" : rt === "deno" ? "Deno" : rt;
  const seeds = [...new Set(figures.map((f) => f.seed))].join(", ");
  return [
    "## Fuzz",
    "",
    `\`${about.command}\`, ${about.date}, ${about.machine}; ${about.versions}; load average ` +
    `before the run ${about.load}. It runs \`${TEST}\` with \`FUZZ_REPORT\` set; seed ${seeds} ` +
    `(\`FUZZ_SEED=${seeds}\` replays the same frames, their interleaving aside).`,
    "",
    "Each runtime's server (`--rate 0 --max-frame 4096 --max-conns-per-ip 0`) reads at least " +
    `${fmtNum(figures[0]?.frames)} random and mutated frames from 24 connections at a time, ` +
    "100 frames per write: valid commands with corrupted arguments, random bytes as binary " +
    "frames, empty, oversized (over `--max-frame`: `417`; over the runtime's limit: close " +
    "`1009`), unicode, control-character and lone-surrogate frames. Every frame the server " +
    "reads must be answered (`ok` or `error`, valid against the protocol's schemas) or close " +
    "its connection with a code PROTOCOL.md documents; the frames written behind the closing " +
    "one are never read and go back to the budget, and the closed connection is replaced by a " +
    "new peer. Afterwards the server must have logged no error, serve two fresh clients, and " +
    "exit 0 on SIGTERM: a crash at any point fails the test, and these figures are written " +
    "only when every check has passed.",
    "",
    `| | ${figures.map((f) => name(f.runtime)).join(" | ")} |`,
    `|---|${"---|".repeat(figures.length)}`,
    ...rows.map(([label, cell]) => `| ${label} | ${figures.map(cell).join(" | ")} |`),
  ].join("\n");
}

async function main() {
  const args = Deno.args;
  if (args.includes("--help") || args.includes("-h")) {
    console.log("deno run -A bench/fuzz.ts [--frames N] [--seed N] [--write]");
    return;
  }
  const report = `${BUILD}/fuzz.jsonl`;
  await Deno.mkdir(BUILD, { recursive: true });
  await Deno.remove(report).catch(() => {});
  const env: Record<string, string> = { FUZZ_REPORT: report };
  const frames = flag(args, "--frames"), seed = flag(args, "--seed");
  if (frames) env.FUZZ_FRAMES = frames;
  if (seed) env.FUZZ_SEED = seed;
  const load = loadAverage();
  console.log(`running ${TEST} with FUZZ_REPORT=${report} ...`);
  const r = await run(["deno", "test", "-A", TEST], { env, timeoutMs: 900_000 });
  if (r.code !== 0) {
    console.error(`${r.stdout}\n${r.stderr}`.trim().split("\n").slice(-40).join("\n"));
    console.error(`\nthe fuzz test failed (exit ${r.code}): no figures`);
    Deno.exit(1);
  }
  const figures = (await Deno.readTextFile(report)).trim().split("\n")
    .map((l) => JSON.parse(l) as FuzzFigures)
    .sort((a, b) => a.runtime.localeCompare(b.runtime));
  const git = await run(["git", "describe", "--always", "--dirty"]).catch(() => null);
  const runtimes = figures.map((f) => f.runtime);
  const section = renderFuzz(figures, {
    command: `deno run -A bench/fuzz.ts${args.length ? " " + args.join(" ") : ""}`,
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    machine: await machine(),
    versions: [
      `signaller ${git?.stdout.trim() || "?"}`,
      ...(runtimes.includes("deno") ? [`deno ${Deno.version.deno}`] : []),
      ...(runtimes.includes("bun") ? [`bun ${await version(["bun", "--version"])}`] : []),
    ].join(", "),
    load,
  });
  console.log(`\n${section}\n`);
  if (!args.includes("--write")) return;
  const out = `${BENCH}/RESULTS.md`;
  await Deno.writeTextFile(out, putSection(await Deno.readTextFile(out), section, "Soak"));
  console.log(`wrote the Fuzz section of ${out}`);
}

if (import.meta.main) await main();
