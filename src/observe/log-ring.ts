/**
 * The decision log's destination, written off the request path (issue 11).
 *
 * A record's line is copied once, by the request path, into a ring of bytes
 * in a `SharedArrayBuffer` (`Buffer#write` straight into shared memory: no
 * Buffer object, no list of pending chunks, no write callback per batch); a
 * writer thread (src/observe/log-ring-worker.ts) takes the bytes out and
 * writes them to the destination with blocking writes. The two meet only in
 * four control words (src/observe/log-ring-layout.ts): HEAD and TAIL, each
 * stored by one side, and a WAITING flag so the request path wakes the
 * writer (one futex call) only when it actually sleeps — under load, never.
 *
 * The bound and overload policy are {@link BoundedLogStream}'s (the same
 * interface, src/observe/log-writer.ts): "buffered" is every byte accepted
 * and not yet written — in the ring, or waiting in a short queue on this
 * side when the ring is full (a stalled destination) or smaller than
 * `max_buffer_bytes` after a reload raised it:
 *
 * - `drop`: a line that would take buffered past `max_buffer_bytes` is
 *   dropped and reported (`onDrop`); the request path never waits;
 * - `block`: nothing is dropped; at `max_buffer_bytes` new requests wait at
 *   admission ({@link whenWritable}) until the writer has made room
 *   (`Atomics.waitAsync` on TAIL, so this side learns without polling).
 *
 * Lines stay whole and in order: one producer, one consumer, one byte stream.
 */
import { Worker } from 'node:worker_threads';
import type { BufferLimits, LogSink } from './log-writer.ts';
import { CONTROL_WORDS, CTL, type RingWorkerData } from './log-ring-layout.ts';

/** The ring's size: a bounded transport, not the buffer bound (that is `max_buffer_bytes`). */
export const DEFAULT_RING_BYTES = 1 << 20;

/** Hooks of a {@link RingLogStream}. */
export interface RingLogHooks {
  /** A line of `bytes` bytes was dropped (`drop` policy). Must not throw. */
  readonly onDrop?: (bytes: number) => void;
  /** The destination failed (cannot open, EPIPE, disk full); `lost` lines are gone. Must not throw. */
  readonly onError?: (err: Error, lost: number) => void;
  /** Ring size in bytes (tests); default {@link DEFAULT_RING_BYTES}, at most `maxBytes`. */
  readonly ringBytes?: number;
}

/** `Atomics.waitAsync` (ES2024; Node ≥ 16), typed here because the project's `lib` predates it. */
const waitAsync = (Atomics as unknown as {
  waitAsync(ta: Int32Array, index: number, value: number, timeoutMs?: number): { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
}).waitAsync;

const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './log-ring-worker.ts' : './log-ring-worker.js', import.meta.url);

/** One destination behind a shared ring and a writer thread; see the module comment. */
export class RingLogStream implements LogSink {
  readonly #ctl: Int32Array;
  /** A Buffer view of the ring: `write(string, offset, length)` encodes straight into it. */
  readonly #ring: Buffer;
  readonly #cap: number;
  readonly #worker: Worker;
  readonly #onDrop: ((bytes: number) => void) | undefined;
  #limits: BufferLimits;
  #head = 0;
  /** Lines accepted while the ring had no room, oldest first, encoded; `#pendingAt` into the first. */
  #pending: Buffer[] = [];
  #pendingAt = 0;
  #pendingBytes = 0;
  /** Waiting on TAIL (Atomics.waitAsync) for the writer to make room. */
  #watching = false;
  #waiters: (() => void)[] = [];
  #room: Promise<void> | undefined;
  #ending: Promise<void> | undefined;
  #exited = false;
  readonly #exit: Promise<void>;

  constructor(destination: string, limits: BufferLimits, hooks: RingLogHooks = {}) {
    this.#limits = limits;
    this.#onDrop = hooks.onDrop;
    // One byte always stays free, so HEAD === TAIL means empty, never full.
    this.#cap = Math.max(1024, Math.min(hooks.ringBytes ?? DEFAULT_RING_BYTES, limits.maxBytes)) + 1;
    const control = new SharedArrayBuffer(CONTROL_WORDS * 4);
    const ring = new SharedArrayBuffer(this.#cap);
    this.#ctl = new Int32Array(control);
    this.#ring = Buffer.from(ring);
    const workerData: RingWorkerData = { control, ring, destination };
    // The writer allocates nothing per record: a small heap is plenty.
    this.#worker = new Worker(WORKER_URL, { workerData, resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 }, stdout: false, stderr: false });
    // Never what keeps the process alive: shutdown ends it explicitly (end()).
    this.#worker.unref();
    const onError = hooks.onError ?? (() => {});
    this.#worker.on('message', (m: { type?: string; message?: string; lost?: number }) => {
      if (m?.type === 'error') onError(new Error(String(m.message)), m.lost ?? 0);
    });
    this.#worker.on('error', (err) => onError(err, 0));
    this.#exit = new Promise((resolve) =>
      this.#worker.once('exit', () => {
        this.#exited = true;
        // Nobody will drain the ring any more: let waiters through to a clean end.
        this.#release();
        resolve();
      }),
    );
  }

  /** Bytes accepted and not yet written by the destination. */
  get buffered(): number {
    return this.#ringUsed() + this.#pendingBytes;
  }

  get limits(): BufferLimits {
    return this.#limits;
  }

  /** New limits (a reload): the latest config of the destination wins. */
  configure(limits: BufferLimits): void {
    this.#limits = limits;
    if (this.buffered < limits.maxBytes || limits.policy === 'drop') this.#release();
  }

  write(line: string): boolean {
    if (this.#exited || this.#ending !== undefined) {
      // Closed (shutdown): nothing will write it. Callers stop writing before end().
      return false;
    }
    const free = this.#pendingBytes === 0 ? this.#free() : 0;
    // UTF-8 takes at most 3 bytes per UTF-16 unit: when that fits (the usual case), encode
    // straight into the ring without measuring the line first.
    const most = line.length * 3;
    const head = this.#head;
    if (most <= free && most <= this.#cap - head && (this.#limits.policy === 'block' || this.buffered + most <= this.#limits.maxBytes)) {
      const n = this.#ring.write(line, head, 'utf8');
      this.#head = head + n === this.#cap ? 0 : head + n;
      this.#publish();
      return true;
    }
    const n = Buffer.byteLength(line);
    if (this.#limits.policy === 'drop' && this.buffered + n > this.#limits.maxBytes) {
      this.#onDrop?.(n);
      return false;
    }
    if (this.#pendingBytes === 0 && n <= free) {
      this.#copyIn(line, n);
      this.#publish();
    } else {
      this.#pending.push(Buffer.from(line));
      this.#pendingBytes += n;
      this.#pump();
      this.#watch();
    }
    return true;
  }

  whenWritable(): Promise<void> | undefined {
    if (this.#limits.policy === 'drop' || this.#exited || this.buffered < this.#limits.maxBytes) return undefined;
    // One promise per full episode, shared by every waiting request (no allocation per request).
    this.#room ??= new Promise<void>((resolve) => this.#waiters.push(resolve));
    this.#watch();
    return this.#room;
  }

  /** Write out everything accepted, then close the destination (stdout/stderr are only flushed) and stop the thread. */
  end(): Promise<void> {
    this.#ending ??= (async () => {
      while (this.#pendingBytes > 0 && !this.#exited) {
        this.#pump();
        if (this.#pendingBytes > 0) await this.#tailMoved();
      }
      Atomics.store(this.#ctl, CTL.CLOSING, 1);
      Atomics.notify(this.#ctl, CTL.HEAD);
      // Keep the process alive until the thread has written the rest and closed the file.
      this.#worker.ref();
      await this.#exit;
    })();
    return this.#ending;
  }

  #ringUsed(): number {
    const used = this.#head - Atomics.load(this.#ctl, CTL.TAIL);
    return used >= 0 ? used : used + this.#cap;
  }

  #free(): number {
    return this.#cap - 1 - this.#ringUsed();
  }

  /** Encode `line` (n bytes, known to fit) at HEAD, wrapping at the end of the ring. */
  #copyIn(line: string, n: number): void {
    const head = this.#head;
    const contiguous = this.#cap - head;
    if (n <= contiguous) {
      this.#ring.write(line, head, n, 'utf8');
      this.#head = head + n === this.#cap ? 0 : head + n;
      return;
    }
    // Wraps (once per ring's worth of bytes): encode aside, copy in two parts.
    const bytes = Buffer.from(line);
    bytes.copy(this.#ring, head, 0, contiguous);
    bytes.copy(this.#ring, 0, contiguous, n);
    this.#head = n - contiguous;
  }

  /** Copy pending bytes into the ring as far as there is room (a line may be split: the byte stream stays in order). */
  #pump(): void {
    let moved = false;
    while (this.#pending.length > 0) {
      const free = this.#free();
      if (free === 0) break;
      const first = this.#pending[0]!;
      const take = Math.min(free, first.length - this.#pendingAt, this.#cap - this.#head);
      first.copy(this.#ring, this.#head, this.#pendingAt, this.#pendingAt + take);
      this.#head = this.#head + take === this.#cap ? 0 : this.#head + take;
      this.#pendingAt += take;
      this.#pendingBytes -= take;
      moved = true;
      if (this.#pendingAt === first.length) {
        this.#pending.shift();
        this.#pendingAt = 0;
      }
    }
    if (moved) this.#publish();
  }

  /** Make the new HEAD visible; wake the writer only if it sleeps. */
  #publish(): void {
    Atomics.store(this.#ctl, CTL.HEAD, this.#head);
    if (Atomics.load(this.#ctl, CTL.WAITING) === 1) Atomics.notify(this.#ctl, CTL.HEAD);
  }

  /** Resolves when the writer moved TAIL (or soon, to look again). */
  #tailMoved(): Promise<unknown> {
    const r = waitAsync(this.#ctl, CTL.TAIL, Atomics.load(this.#ctl, CTL.TAIL), 1000);
    return r.async ? r.value : Promise.resolve();
  }

  /** While lines are pending or requests wait for room: follow TAIL, pump, release. */
  #watch(): void {
    if (this.#watching || this.#exited) return;
    this.#watching = true;
    const step = (): void => {
      this.#pump();
      if (this.buffered < this.#limits.maxBytes || this.#limits.policy === 'drop') this.#release();
      if (!this.#exited && (this.#pendingBytes > 0 || this.#waiters.length > 0)) {
        void this.#tailMoved().then(step);
      } else {
        this.#watching = false;
      }
    };
    void this.#tailMoved().then(step);
  }

  #release(): void {
    if (this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    this.#room = undefined;
    for (const w of waiters) w();
  }
}
