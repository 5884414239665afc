/** Prometheus metrics: counters, gauges read at scrape time, histograms. */

const BUCKETS_MS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000];

/** A latency histogram in milliseconds, exposed in seconds. */
export class Histogram {
  readonly counts: number[] = BUCKETS_MS.map(() => 0);
  sum = 0;
  count = 0;

  observe(ms: number): void {
    this.sum += ms;
    this.count++;
    for (let i = 0; i < BUCKETS_MS.length; i++) {
      if (ms <= BUCKETS_MS[i]) {
        this.counts[i]++;
        return;
      }
    }
  }

  /** The Prometheus lines of this histogram. */
  render(name: string): string[] {
    const lines: string[] = [];
    let cum = 0;
    BUCKETS_MS.forEach((b, i) => {
      cum += this.counts[i];
      lines.push(`${name}_bucket{le="${b / 1000}"} ${cum}`);
    });
    lines.push(`${name}_bucket{le="+Inf"} ${this.count}`);
    lines.push(`${name}_sum ${this.sum / 1000}`, `${name}_count ${this.count}`);
    return lines;
  }
}

/** Message counts by front-end, then by message type. */
export type Counts = Map<string, Map<string, number>>;

/** The server's metrics. Gauges are read from `gauges` at scrape time. */
export class Metrics {
  /** Messages received, by front-end and by the type its protocol gives them. */
  readonly messagesIn: Counts = new Map();
  /** Messages sent, by the recipient's front-end and type. */
  readonly messagesOut: Counts = new Map();
  readonly errors = new Map<number, number>();
  /** Failures nobody planned for (a bug, a store that threw), by where they happened. */
  readonly unexpected = new Map<string, number>();
  /** WebSocket upgrades refused at the edge, by limit: `ip` (429) or `global` (503). */
  readonly refused = new Map<string, number>();
  readonly fanout = new Histogram();
  readonly store = new Histogram();
  gauges: () => Record<string, number> = () => ({});

  /** Counts `n` of `key` in `map`. */
  count<K>(map: Map<K, number>, key: K, n = 1): void {
    map.set(key, (map.get(key) ?? 0) + n);
  }

  /** Counts `n` messages of `type` received by a socket of `frontend`. */
  countIn(frontend: string, type: string, n = 1): void {
    add(this.messagesIn, frontend, type, n);
  }

  /** Counts `n` messages of `type` sent to sockets of `frontend`. */
  countOut(frontend: string, type: string, n = 1): void {
    add(this.messagesOut, frontend, type, n);
  }

  /** The Prometheus text exposition, with `extra` gauges read by the caller. */
  render(extra: Record<string, number> = {}): string {
    const out: string[] = [];
    for (const [name, value] of Object.entries({ ...this.gauges(), ...extra })) {
      out.push(`# TYPE signaller_${name} gauge`, `signaller_${name} ${value}`);
    }
    const messages = (name: string, counts: Counts) => {
      out.push(`# TYPE ${name} counter`);
      for (const [frontend, types] of counts) {
        for (const [type, v] of types) {
          out.push(`${name}{frontend="${escape(frontend)}",type="${escape(type)}"} ${v}`);
        }
      }
    };
    messages("signaller_messages_in_total", this.messagesIn);
    messages("signaller_messages_out_total", this.messagesOut);
    out.push("# TYPE signaller_errors_total counter");
    for (const [code, v] of this.errors) out.push(`signaller_errors_total{code="${code}"} ${v}`);
    out.push("# TYPE signaller_unexpected_errors_total counter");
    for (const [where, v] of this.unexpected) {
      out.push(`signaller_unexpected_errors_total{where="${escape(where)}"} ${v}`);
    }
    out.push("# TYPE signaller_connections_refused_total counter");
    for (const [reason, v] of this.refused) {
      out.push(`signaller_connections_refused_total{reason="${escape(reason)}"} ${v}`);
    }
    out.push(
      "# TYPE signaller_fanout_seconds histogram",
      ...this.fanout.render("signaller_fanout_seconds"),
    );
    out.push(
      "# TYPE signaller_store_seconds histogram",
      ...this.store.render("signaller_store_seconds"),
    );
    return out.join("\n") + "\n";
  }
}

function add(counts: Counts, frontend: string, type: string, n: number): void {
  let types = counts.get(frontend);
  if (types === undefined) counts.set(frontend, types = new Map());
  types.set(type, (types.get(type) ?? 0) + n);
}

/** A label value as the Prometheus text format wants it. */
function escape(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => c === "\n" ? "\\n" : "\\" + c);
}
