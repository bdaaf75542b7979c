/**
 * Decision-log upload in OPA's decision-log service protocol
 * (https://www.openpolicyagent.org/docs/management-decision-logs, "Decision
 * Log Service API"): events are `POST`ed to `<url>/<resource>` (default
 * `/logs`) as a gzip-compressed JSON array, with `Content-Type:
 * application/json` and `Content-Encoding: gzip`; any 2xx is a success.
 *
 * Nothing here runs on the request path except {@link DecisionUpload.push},
 * which appends the event's JSON text to a buffer bounded by bytes (oldest
 * dropped first, counted) and returns. A timer-driven loop drains the buffer
 * in chunks whose compressed size is at most `upload_size_limit_bytes`, like
 * OPA's chunk encoder (an uncompressed target that adapts to the observed
 * compression ratio), compressing off the event loop (zlib's thread pool).
 *
 * Failure handling follows OPA's size buffer (`v1/plugins/logs/sizeBuffer.go`):
 * a chunk that fails is put back and retried with OPA's backoff (0.1 s ×1.6^n,
 * capped at `max_delay_seconds`, ±20 %), while the buffer limit drops the
 * oldest events. One deliberate difference: on 413 Payload Too Large OPA
 * requeues the same bytes, which the server will refuse again forever; regate
 * splits the chunk in two and resends at once, and drops (counts) a single
 * event the server refuses.
 */

import { stat, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { request } from '../upstream/undici.ts';
import type { DecisionLogServiceConfig } from '../config/types.ts';
import { backoffDelayMs, pollDelayMs } from '../policy/bundle-client.ts';
import { VERSION } from '../version.ts';

const gzip = promisify(gzipCallback);

/** Values of `regate_decision_log_upload_requests_total{result}`. */
export const UPLOAD_RESULTS = ['success', 'rejected', 'too_large', 'failed'] as const;
/** How one upload request ended: 2xx; another HTTP status; 413; no response (network, timeout, credentials). */
export type UploadResult = (typeof UPLOAD_RESULTS)[number];
/** Values of `regate_decision_log_upload_dropped_events_total{reason}`. */
export const UPLOAD_DROP_REASONS = ['buffer_full', 'too_large', 'shutdown'] as const;
export type UploadDropReason = (typeof UPLOAD_DROP_REASONS)[number];

/** What the uploader reports (metrics). */
export interface UploadObserver {
  /** One upload request ended; `events`/`bytes` (compressed) are what it carried. */
  upload(result: UploadResult, events: number, bytes: number): void;
  /** `count` events were dropped. */
  dropped(reason: UploadDropReason, count: number): void;
  /** Bytes of events now buffered (in flight included). */
  buffered(bytes: number): void;
}

/** Logger subset used here. */
export interface UploadLogger {
  warn(obj: object, msg: string): void;
}

export interface DecisionUploadOptions {
  readonly observer: UploadObserver;
  readonly logger: UploadLogger;
  /** Jitter source (tests). */
  readonly random?: () => number;
}

/** The upload sink of one service config. */
export interface DecisionUpload {
  /** Buffer one event (its JSON text). Never blocks, never throws. */
  push(event: string): void;
  /** Upload everything buffered now (tests, shutdown); resolves when the round ended. */
  flush(): Promise<void>;
  /** Stop the loop after one last bounded upload round; what is left is dropped and counted. */
  close(): Promise<void>;
}

/** Byte overhead of one event in the array: its comma (the brackets are counted once per chunk). */
const ARRAY_OVERHEAD = 1;

/** The upload URL: OPA joins service URL and resource with exactly one slash. */
export function uploadUrl(config: Pick<DecisionLogServiceConfig, 'url' | 'resource'>): string {
  return `${config.url.replace(/\/+$/, '')}/${config.resource.replace(/^\/+/, '')}`;
}

/** Start the uploader for `config`: its loop runs until {@link DecisionUpload.close}. */
export function createDecisionUpload(config: DecisionLogServiceConfig, options: DecisionUploadOptions): DecisionUpload {
  return new Uploader(config, options);
}

class Uploader implements DecisionUpload {
  readonly #config: DecisionLogServiceConfig;
  readonly #observer: UploadObserver;
  readonly #logger: UploadLogger;
  readonly #random: () => number;
  readonly #url: string;
  readonly #token: TokenFile | null;

  /** Buffered events, oldest first, from `#head` on (a queue without O(n) shifts). */
  #events: string[] = [];
  #sizes: number[] = [];
  #head = 0;
  /** Bytes of buffered events, plus the chunk in flight. */
  #bytes = 0;
  /** Uncompressed bytes aimed at per chunk; adapts to the compression ratio seen. */
  #target: number;
  #retries = 0;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | null = null;
  #closed = false;
  /** Aborts the request in flight on close once the last round's deadline passed. */
  #abort = new AbortController();

  constructor(config: DecisionLogServiceConfig, options: DecisionUploadOptions) {
    this.#config = config;
    this.#observer = options.observer;
    this.#logger = options.logger;
    this.#random = options.random ?? Math.random;
    this.#url = uploadUrl(config);
    this.#token = config.credentials.bearer !== undefined ? new TokenFile(config.credentials.bearer.token_path) : null;
    // JSON decision events usually compress 5-10x; start at 4x and learn.
    this.#target = config.upload_size_limit_bytes * 4;
    this.#observer.buffered(0);
    this.#schedule(pollDelayMs(config.min_delay_seconds, config.max_delay_seconds, this.#random));
  }

  push(event: string): void {
    if (this.#closed) {
      this.#observer.dropped('shutdown', 1);
      return;
    }
    const size = Buffer.byteLength(event) + ARRAY_OVERHEAD;
    const limit = this.#config.buffer_size_limit_bytes;
    let dropped = 0;
    while (this.#bytes + size > limit && this.#head < this.#events.length) {
      this.#bytes -= this.#sizes[this.#head]!;
      this.#events[this.#head] = '';
      this.#head++;
      dropped++;
    }
    if (this.#bytes + size > limit) {
      // The chunk in flight holds the rest of the buffer: the newest event is the one that does not fit.
      dropped++;
    } else {
      this.#events.push(event);
      this.#sizes.push(size);
      this.#bytes += size;
    }
    this.#compact();
    if (dropped > 0) this.#observer.dropped('buffer_full', dropped);
    this.#observer.buffered(this.#bytes);
  }

  flush(): Promise<void> {
    if (this.#round === null) {
      clearTimeout(this.#timer);
      this.#round = this.#runRound().finally(() => {
        this.#round = null;
      });
    }
    return this.#round;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    // One last round (the request path has stopped writing), bounded by the request deadline.
    const deadline = setTimeout(() => this.#abort.abort(), this.#config.timeout_ms * 2);
    try {
      await this.#round;
      if (this.#queued() > 0) await this.#runRound();
    } finally {
      clearTimeout(deadline);
    }
    const left = this.#queued();
    if (left > 0) this.#observer.dropped('shutdown', left);
    this.#events = [];
    this.#sizes = [];
    this.#head = 0;
    this.#bytes = 0;
    this.#observer.buffered(0);
  }

  #queued(): number {
    return this.#events.length - this.#head;
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.flush(), delayMs);
    // The loop never keeps the process alive; shutdown flushes explicitly.
    this.#timer.unref();
  }

  /** Upload chunks until the buffer is empty or an upload fails; then schedule the next round. */
  async #runRound(): Promise<void> {
    let failed = false;
    while (this.#queued() > 0 && !this.#abort.signal.aborted) {
      const ok = await this.#uploadOneChunk().catch((err: unknown) => {
        this.#logger.warn({ err: String(err) }, 'decision-log upload failed');
        return false;
      });
      if (!ok) {
        failed = true;
        break;
      }
    }
    if (failed) {
      this.#retries++;
      this.#schedule(backoffDelayMs(this.#retries, this.#config.max_delay_seconds, this.#random));
    } else {
      this.#retries = 0;
      this.#schedule(pollDelayMs(this.#config.min_delay_seconds, this.#config.max_delay_seconds, this.#random));
    }
  }

  /**
   * Take the oldest events that fit one chunk, compress, send. True when the
   * loop may go on (sent, or handled without waiting: split or dropped).
   */
  async #uploadOneChunk(): Promise<boolean> {
    const limit = this.#config.upload_size_limit_bytes;
    const { events, bytes } = this.#take(this.#target);
    let body: Buffer;
    try {
      body = await gzip(`[${events.join(',')}]`);
    } catch (err) {
      this.#putBack(events, bytes);
      throw err;
    }
    if (body.length > limit) {
      this.#putBack(events, bytes);
      if (events.length === 1) {
        this.#dropHead(1, 'too_large');
        this.#logger.warn({ limit }, 'decision-log event dropped: larger than upload_size_limit_bytes even compressed alone');
      } else {
        // Aim below what this chunk compressed to, scaled to the limit (OPA's encoder shrinks likewise).
        this.#target = Math.max(1, Math.floor(bytesOf(bytes) * (limit / body.length) * 0.9));
      }
      return true;
    }
    const result = await this.#send(body);
    this.#observer.upload(result, events.length, body.length);
    if (result === 'success') {
      this.#bytes -= bytesOf(bytes);
      this.#observer.buffered(this.#bytes);
      // Grow toward the limit when chunks come out small (bounded by what the buffer can hold).
      if (body.length < limit / 2) this.#target = Math.min(this.#config.buffer_size_limit_bytes, this.#target * 2);
      return true;
    }
    this.#putBack(events, bytes);
    if (result === 'too_large') {
      if (events.length === 1) {
        this.#dropHead(1, 'too_large');
        return true;
      }
      // The server's limit is below ours: halve and resend now rather than fail the same bytes forever.
      this.#target = Math.max(1, Math.floor(bytesOf(bytes) / 2));
      return true;
    }
    return false;
  }

  /** Remove the oldest events up to `target` bytes (at least one) from the queue; their bytes stay counted. */
  #take(target: number): { events: string[]; bytes: number[] } {
    let end = this.#head;
    let sum = 0;
    while (end < this.#events.length && (end === this.#head || sum + this.#sizes[end]! <= target)) sum += this.#sizes[end++]!;
    const events = this.#events.slice(this.#head, end);
    const bytes = this.#sizes.slice(this.#head, end);
    this.#events.splice(this.#head, end - this.#head);
    this.#sizes.splice(this.#head, end - this.#head);
    return { events, bytes };
  }

  /** Requeue a chunk at the front (it is older than anything pushed meanwhile). */
  #putBack(events: string[], bytes: number[]): void {
    this.#events.splice(this.#head, 0, ...events);
    this.#sizes.splice(this.#head, 0, ...bytes);
  }

  #dropHead(count: number, reason: UploadDropReason): void {
    for (let i = 0; i < count && this.#head < this.#events.length; i++) {
      this.#bytes -= this.#sizes[this.#head]!;
      this.#events[this.#head] = '';
      this.#head++;
    }
    this.#compact();
    this.#observer.dropped(reason, count);
    this.#observer.buffered(this.#bytes);
  }

  /** Drop the consumed prefix once it is large; amortized O(1) per event. */
  #compact(): void {
    if (this.#head > 1024 && this.#head * 2 > this.#events.length) {
      this.#events = this.#events.slice(this.#head);
      this.#sizes = this.#sizes.slice(this.#head);
      this.#head = 0;
    }
  }

  async #send(body: Buffer): Promise<UploadResult> {
    const headers: Record<string, string> = {
      ...this.#config.headers,
      'content-type': 'application/json',
      'content-encoding': 'gzip',
      'user-agent': `regate/${VERSION}`,
    };
    try {
      if (this.#token !== null) headers['authorization'] = `${this.#config.credentials.bearer!.scheme} ${await this.#token.read()}`;
      const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#config.timeout_ms)]);
      const res = await request(this.#url, { method: 'POST', headers, body, signal, headersTimeout: this.#config.timeout_ms, bodyTimeout: this.#config.timeout_ms });
      // The body is not used; read it so the connection can be reused.
      await res.body.dump({ signal, limit: 65_536 });
      if (res.statusCode >= 200 && res.statusCode < 300) return 'success';
      this.#logger.warn({ status: res.statusCode, url: this.#url }, 'decision-log upload refused by the service');
      return res.statusCode === 413 ? 'too_large' : 'rejected';
    } catch (err) {
      this.#logger.warn({ err: err instanceof Error ? err.message : String(err), url: this.#url }, 'decision-log upload failed');
      return 'failed';
    }
  }
}

function bytesOf(sizes: readonly number[]): number {
  let sum = 0;
  for (const s of sizes) sum += s;
  return sum;
}

/** A token file, re-read when its mtime, size or inode changed (a rotated Kubernetes token is a new file). */
class TokenFile {
  readonly #path: string;
  #stamp = '';
  #token = '';

  constructor(path: string) {
    this.#path = path;
  }

  async read(): Promise<string> {
    const st = await stat(this.#path);
    const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (stamp !== this.#stamp) {
      const token = (await readFile(this.#path, 'utf8')).trim();
      if (token === '' || /[\r\n\0]/.test(token)) throw new Error(`token file ${this.#path} is empty or holds more than one line`);
      this.#token = token;
      this.#stamp = stamp;
    }
    return this.#token;
  }
}
