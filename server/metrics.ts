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

/** The server's metrics. Gauges are read from `gauges` at scrape time. */
export class Metrics {
  readonly messagesIn = new Map<string, number>();
  readonly messagesOut = new Map<string, number>();
  readonly errors = new Map<number, number>();
  /** WebSocket upgrades refused at the edge, by limit: `ip` (429) or `global` (503). */
  readonly refused = new Map<string, number>();
  readonly fanout = new Histogram();
  readonly store = new Histogram();
  gauges: () => Record<string, number> = () => ({});

  /** Counts `n` of `key` in `map`. */
  count<K>(map: Map<K, number>, key: K, n = 1): void {
    map.set(key, (map.get(key) ?? 0) + n);
  }

  /** The Prometheus text exposition. */
  render(): string {
    const out: string[] = [];
    for (const [name, value] of Object.entries(this.gauges())) {
      out.push(`# TYPE signaller_${name} gauge`, `signaller_${name} ${value}`);
    }
    const counter = (name: string, label: string, map: Map<string | number, number>) => {
      out.push(`# TYPE ${name} counter`);
      for (const [k, v] of map) out.push(`${name}{${label}="${k}"} ${v}`);
    };
    counter("signaller_messages_in_total", "type", this.messagesIn);
    counter("signaller_messages_out_total", "type", this.messagesOut);
    counter("signaller_errors_total", "code", this.errors);
    counter("signaller_connections_refused_total", "reason", this.refused);
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
