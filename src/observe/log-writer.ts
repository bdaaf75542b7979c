/**
 * The decision log's bounded write buffer.
 *
 * A destination slower than the proxy (a saturated disk, a pipe read slowly, a
 * log shipper that stalls) must not turn into unbounded memory: issue 16 saw
 * ~30k lines and 400+ MB pile up in the writer's buffer. So every line goes
 * through this buffer of at most `max_buffer_bytes`, and what happens when it
 * is full is an explicit policy (`decision_log.overload`):
 *
 * - `block` (default, an audit trail's choice): nothing is ever dropped. While
 *   the buffer is full, new requests wait at admission ({@link whenWritable})
 *   until the destination has taken enough, so a request is never answered
 *   without its record. Requests admitted before the buffer filled still add
 *   theirs, so the bound is `max_buffer_bytes` + one record per request in
 *   flight; the requests waiting hold no record yet.
 * - `drop`: a line that does not fit is dropped, counted
 *   (`regate_decision_log_dropped_total`) and reported by `onDrop`; the
 *   request path never waits. The buffer never exceeds `max_buffer_bytes`.
 *
 * Accounting is by bytes accepted minus bytes the destination reported
 * written (sonic-boom's 'write' event), so it is exact whatever sonic-boom
 * batches. The interface (`write(line) → accepted`, `whenWritable()`) is
 * what a writer off the request path (a worker thread with a ring buffer,
 * issue 11) also implements: the policy stays the same, only where the bytes
 * wait changes.
 */
import type { pino } from 'pino';

type SonicBoom = ReturnType<typeof pino.destination>;

/** `decision_log.overload`. */
export type OverloadPolicy = 'block' | 'drop';

/** Limits of a {@link BoundedLogStream}; a reload may change them. */
export interface BufferLimits {
  /** Bytes accepted and not yet written, at most. */
  readonly maxBytes: number;
  readonly policy: OverloadPolicy;
}

/** What the decision log writes to. */
export interface LogSink {
  /** Append one whole line. False when it was dropped (`drop` policy, buffer full). */
  write(line: string): boolean;
  /**
   * Admission: undefined when a request may proceed now; under `block` with a
   * full buffer, a promise that resolves once there is room.
   */
  whenWritable(): Promise<void> | undefined;
}

/** Hooks of a {@link BoundedLogStream}. */
export interface BoundedLogHooks {
  /** A line of `bytes` bytes was dropped (`drop` policy). Must not throw. */
  readonly onDrop?: (bytes: number) => void;
}

/** A sonic-boom destination behind a bounded buffer; see the module comment. */
export class BoundedLogStream implements LogSink {
  readonly #stream: SonicBoom;
  readonly #onDrop: ((bytes: number) => void) | undefined;
  #limits: BufferLimits;
  #buffered = 0;
  #waiters: (() => void)[] = [];
  #room: Promise<void> | undefined;

  constructor(stream: SonicBoom, limits: BufferLimits, hooks: BoundedLogHooks = {}) {
    this.#stream = stream;
    this.#limits = limits;
    this.#onDrop = hooks.onDrop;
    stream.on('write', (n: number) => {
      this.#buffered = Math.max(0, this.#buffered - n);
      if (this.#buffered < this.#limits.maxBytes) this.#release();
    });
    // Closed (shutdown) or broken: nobody will drain the buffer; let waiters through to a clean end.
    stream.on('close', () => this.#release());
  }

  /** Bytes accepted and not yet written by the destination. */
  get buffered(): number {
    return this.#buffered;
  }

  get limits(): BufferLimits {
    return this.#limits;
  }

  /** New limits (a reload): the latest config of the destination wins. */
  configure(limits: BufferLimits): void {
    this.#limits = limits;
    if (this.#buffered < limits.maxBytes || limits.policy === 'drop') this.#release();
  }

  write(line: string): boolean {
    const buf = Buffer.from(line);
    if (this.#limits.policy === 'drop' && this.#buffered + buf.length > this.#limits.maxBytes) {
      this.#onDrop?.(buf.length);
      return false;
    }
    this.#buffered += buf.length;
    // Buffer mode (see openLogStream): sonic-boom takes the bytes as they are.
    this.#stream.write(buf as unknown as string);
    return true;
  }

  whenWritable(): Promise<void> | undefined {
    if (this.#limits.policy === 'drop' || this.#buffered < this.#limits.maxBytes) return undefined;
    // One promise per full episode, shared by every waiting request (no allocation per request).
    this.#room ??= new Promise<void>((resolve) => this.#waiters.push(resolve));
    return this.#room;
  }

  #release(): void {
    if (this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    this.#room = undefined;
    for (const w of waiters) w();
  }
}
