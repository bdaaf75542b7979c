/**
 * Decision-log destinations shared by successive runtime versions.
 *
 * Each runtime has its own decision log (its own bundle revisions and mask),
 * but two runtimes writing to the same destination through two buffered
 * streams could interleave their writes mid-line while the old one drains —
 * a pipe or file only guarantees whole writes up to PIPE_BUF. So the
 * destination stream is opened once per destination and shared: every record
 * goes through one buffer, whole lines in order. A stream is ended (flushed,
 * and closed unless it is stdout/stderr) when the last runtime using it is
 * closed, or at shutdown.
 *
 * Each destination is a {@link RingLogStream}: the request path copies a
 * line into a shared ring, a writer thread writes it out (issue 11).
 */

import type { BufferLimits, LogSink } from '../observe/log-writer.ts';
import { RingLogStream } from '../observe/log-ring.ts';

/** Open decision-log destinations, reference-counted by the runtimes that write to them. */
export class LogStreams {
  readonly #open = new Map<string, { bounded: RingLogStream; refs: number }>();
  readonly #onError: (err: Error) => void;
  readonly #onDrop: (destination: string, bytes: number) => void;

  /**
   * `onError`: a destination failed (cannot open, disk full, EPIPE); called once per record lost.
   * `onDrop`: a record was dropped, its destination's buffer full (`overload: drop`).
   */
  constructor(onError: (err: Error) => void, onDrop: (destination: string, bytes: number) => void = () => {}) {
    this.#onError = onError;
    this.#onDrop = onDrop;
  }

  /** Bytes buffered and not yet written, over every open destination. */
  get buffered(): number {
    let n = 0;
    for (const e of this.#open.values()) n += e.bounded.buffered;
    return n;
  }

  /**
   * The buffered sink for `destination` (`stdout`, `stderr` or a file path),
   * opened on first use with `limits`; an open one keeps its limits until
   * {@link configure} (a version that is refused must not change them).
   */
  acquire(destination: string, limits: BufferLimits): LogSink {
    let entry = this.#open.get(destination);
    if (entry === undefined) {
      const bounded = new RingLogStream(destination, limits, {
        onDrop: (bytes) => this.#onDrop(destination, bytes),
        // A write that failed may have lost several records (or only part of one).
        onError: (err, lost) => {
          for (let i = 0; i < Math.max(1, lost); i++) this.#onError(err);
        },
      });
      entry = { bounded, refs: 0 };
      this.#open.set(destination, entry);
    }
    entry.refs++;
    // A narrow view: each runtime's decision log would otherwise add its own 'error'
    // listener to the shared stream on every reload (a leak); this class handles errors once.
    const bounded = entry.bounded;
    return { write: (line: string) => bounded.write(line), whenWritable: () => bounded.whenWritable() };
  }

  /** The limits `destination` is written with now (undefined when not open). */
  limits(destination: string): BufferLimits | undefined {
    return this.#open.get(destination)?.bounded.limits;
  }

  /** A new version became active: its `decision_log` limits apply to its destination from now on. */
  configure(destination: string, limits: BufferLimits): void {
    this.#open.get(destination)?.bounded.configure(limits);
  }

  /** A runtime that acquired `destination` was closed; the last one ends the stream. */
  async release(destination: string): Promise<void> {
    const entry = this.#open.get(destination);
    if (entry === undefined) return;
    if (--entry.refs > 0) return;
    this.#open.delete(destination);
    await entry.bounded.end();
  }

  /** Flush and end every destination (shutdown). */
  async closeAll(): Promise<void> {
    const streams = [...this.#open.values()].map((e) => e.bounded);
    this.#open.clear();
    await Promise.all(streams.map((s) => s.end()));
  }
}

/** How often at most the "records dropped" warning is logged. */
export const DROP_WARNING_INTERVAL_MS = 10_000;

/**
 * A warning when records are dropped, at most once per {@link DROP_WARNING_INTERVAL_MS}
 * per destination, with the count since the last one (the metric counts every drop).
 */
export function dropReporter(logger: { warn(obj: object, msg: string): void }, now: () => number = () => performance.now()): (destination: string) => void {
  const last = new Map<string, { at: number; dropped: number }>();
  return (destination) => {
    const t = now();
    const entry = last.get(destination);
    if (entry !== undefined && t - entry.at < DROP_WARNING_INTERVAL_MS) {
      entry.dropped++;
      return;
    }
    const dropped = (entry?.dropped ?? 0) + 1;
    last.set(destination, { at: t, dropped: 0 });
    logger.warn(
      { destination, dropped, interval_ms: DROP_WARNING_INTERVAL_MS },
      'decision log buffer full: records dropped (decision_log.overload: drop; see regate_decision_log_dropped_total)',
    );
  };
}
