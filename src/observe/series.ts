/**
 * Metric families for the request path: counted into preallocated storage,
 * turned into values only when scraped (issue 11).
 *
 * prom-client's `inc()` / `observe()` build a label-hash string (sorting the
 * label names) and a small object on every call, even on a cached child: a
 * few hundred bytes of garbage and several microseconds per request across
 * regate's per-request metrics. Here a series is resolved once (per route,
 * per status class, ...) to an object that owns its numbers in a
 * `Float64Array`; counting is an indexed add, with no allocation. At scrape
 * time each family answers prom-client's collector protocol (`name`, `help`,
 * `type`, `aggregator`, `get()`), so it registers into a prom-client
 * {@link Registry} beside prom-client's own metrics: the text format, the
 * OpenMetrics rendering (src/observe/exposition.ts) and the cluster
 * aggregation (src/cluster/aggregate.ts, `getMetricsAsJSON`) read it like any
 * other metric, with the same names, labels, label order and buckets.
 *
 * Histogram series can carry one exemplar per bucket (the latest observation
 * given one: a trace id), written only in OpenMetrics.
 */

import type { Registry } from 'prom-client';

/** Labels of one series, in the order they are printed. */
export type Labels = Readonly<Record<string, string>>;

/** An exemplar as prom-client's formatter prints it: `# {trace_id="…"} value timestamp`. */
export interface Exemplar {
  readonly labelSet: Labels;
  readonly value: number;
  /** Seconds since the epoch (OpenMetrics). */
  readonly timestamp: number;
}

/** One value as prom-client's `get()` returns it. */
interface Value {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName?: string;
  readonly exemplar?: Exemplar | null;
}

interface FamilyOptions {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly string[];
  /** Where to register (prom-client's `registers`). */
  readonly registers?: readonly Registry[];
}

abstract class Family<S extends { readonly labels: Labels }> {
  readonly name: string;
  readonly help: string;
  abstract readonly type: 'counter' | 'histogram';
  /** Cluster aggregation (src/cluster/aggregate.ts): totals across workers. */
  readonly aggregator = 'sum';
  readonly labelNames: readonly string[];
  protected readonly list: S[] = [];
  readonly #byKey = new Map<string, S>();

  constructor(options: FamilyOptions) {
    this.name = options.name;
    this.help = options.help;
    this.labelNames = options.labelNames ?? [];
  }

  /** Register into each of `registers` (done by the subclass constructor, once its fields exist). */
  protected register(registers: readonly Registry[] | undefined): void {
    for (const r of registers ?? []) r.registerMetric(this as never);
  }

  /**
   * The series of `labels`, created (at 0, so it is exported from now on) on
   * first use. Resolve it once and keep it; not meant for the request path.
   */
  series(labels: Labels = {}): S {
    const key = this.#key(labels);
    let s = this.#byKey.get(key);
    if (s === undefined) {
      s = this.create(Object.freeze({ ...labels }));
      this.#byKey.set(key, s);
      this.list.push(s);
    }
    return s;
  }

  /** prom-client's `Registry.resetMetrics()`: every series back to 0 (they stay exported). */
  reset(): void {
    for (const s of this.list) this.clear(s);
  }

  protected abstract create(labels: Labels): S;
  protected abstract clear(series: S): void;
  protected abstract values(): Value[];

  /** prom-client's collector protocol. */
  get(): Promise<{ name: string; help: string; type: string; values: Value[]; aggregator: string }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values: this.values(), aggregator: this.aggregator });
  }

  #key(labels: Labels): string {
    let key = '';
    for (const n of this.labelNames) {
      const v = labels[n];
      if (typeof v !== 'string') throw new TypeError(`${this.name}: label ${n} missing`);
      key += `${v}\u0000`;
    }
    if (Object.keys(labels).length !== this.labelNames.length) throw new TypeError(`${this.name}: labels must be exactly ${this.labelNames.join(', ')}`);
    return key;
  }
}

/** One counter series. */
export class CounterSeries {
  readonly labels: Labels;
  /** `[value]`: a typed array, so counting never allocates a heap number. */
  readonly #value = new Float64Array(1);

  constructor(labels: Labels) {
    this.labels = labels;
  }

  inc(by = 1): void {
    this.#value[0]! += by;
  }

  get value(): number {
    return this.#value[0]!;
  }

  /** @internal */
  clear(): void {
    this.#value[0] = 0;
  }
}

/** A counter family; see the module comment. */
export class CounterFamily extends Family<CounterSeries> {
  readonly type = 'counter';

  constructor(options: FamilyOptions) {
    super(options);
    this.register(options.registers);
  }

  protected create(labels: Labels): CounterSeries {
    return new CounterSeries(labels);
  }

  protected clear(series: CounterSeries): void {
    series.clear();
  }

  protected values(): Value[] {
    return this.list.map((s) => ({ labels: { ...s.labels }, value: s.value }));
  }
}

/** One histogram series: bucket counts (non-cumulative, the last is +Inf), sum and count. */
export class HistogramSeries {
  readonly labels: Labels;
  readonly #bounds: Float64Array;
  /** `[bucket 0 … bucket n-1, +Inf, sum]`. */
  readonly #data: Float64Array;
  #count = 0;
  /** Per bucket (+Inf last): the latest observation that came with a trace id. */
  #exemplars: (Exemplar | undefined)[] | undefined;

  constructor(labels: Labels, bounds: Float64Array) {
    this.labels = labels;
    this.#bounds = bounds;
    this.#data = new Float64Array(bounds.length + 2);
  }

  /** Count `value` (seconds, ≥ 0); with `traceId`, it becomes its bucket's exemplar. */
  observe(value: number, traceId?: string): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.#data[i]!++;
    this.#data[bounds.length + 1]! += value;
    this.#count++;
    if (traceId !== undefined) {
      this.#exemplars ??= [];
      this.#exemplars[i] = { labelSet: { trace_id: traceId }, value, timestamp: Date.now() / 1000 };
    }
  }

  get count(): number {
    return this.#count;
  }

  get sum(): number {
    return this.#data[this.#bounds.length + 1]!;
  }

  /** @internal */
  clear(): void {
    this.#data.fill(0);
    this.#count = 0;
    this.#exemplars = undefined;
  }

  /** @internal The values prom-client's histogram exports: cumulative buckets (`le` first), +Inf, sum, count. */
  values(name: string, out: Value[]): void {
    const bounds = this.#bounds;
    let acc = 0;
    for (let i = 0; i <= bounds.length; i++) {
      acc += this.#data[i]!;
      const exemplar = this.#exemplars?.[i];
      out.push({
        labels: { le: i < bounds.length ? bounds[i]! : '+Inf', ...this.labels },
        value: acc,
        metricName: `${name}_bucket`,
        ...(exemplar !== undefined ? { exemplar } : {}),
      });
    }
    out.push({ labels: { ...this.labels }, value: this.sum, metricName: `${name}_sum` });
    out.push({ labels: { ...this.labels }, value: this.#count, metricName: `${name}_count` });
  }
}

/** A histogram family; see the module comment. */
export class HistogramFamily extends Family<HistogramSeries> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];
  readonly #bounds: Float64Array;

  constructor(options: FamilyOptions & { readonly buckets: readonly number[] }) {
    super(options);
    for (let i = 1; i < options.buckets.length; i++) {
      if (!(options.buckets[i]! > options.buckets[i - 1]!)) throw new TypeError(`${options.name}: buckets must increase`);
    }
    this.buckets = Object.freeze([...options.buckets]);
    this.#bounds = Float64Array.from(options.buckets);
    this.register(options.registers);
  }

  protected create(labels: Labels): HistogramSeries {
    return new HistogramSeries(labels, this.#bounds);
  }

  protected clear(series: HistogramSeries): void {
    series.clear();
  }

  protected values(): Value[] {
    const out: Value[] = [];
    for (const s of this.list) s.values(this.name, out);
    return out;
  }
}
