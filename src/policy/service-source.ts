/**
 * `policy.service`: poll an OPA-bundle-protocol server.
 *
 * One request at a time, never overlapping. The first poll starts at once;
 * after a success (200 handed over, or 304) the next one waits a random
 * delay in [min_delay, max_delay]; after a failure (network, status, timeout,
 * size, refused bundle) OPA's exponential backoff, reset by the next success.
 * The ETag sent in `If-None-Match` is always the active bundle's: a refused
 * bundle's ETag is forgotten (as OPA clears its cache), so the server sends it
 * again in full rather than a 304 that would hide that it is still bad.
 */

import type { BundleServiceConfig } from '../config/types.ts';
import { BundleError } from '../errors.ts';
import type { Bundle } from './bundle.ts';
import { backoffDelayMs, fetchBundle, pollDelayMs, redactUrl } from './bundle-client.ts';
import { contentHash, decodeVerified, type Intake } from './intake.ts';
import type { BundleVerifier } from './signatures.ts';
import type { BundleSource, SourceTimers } from './source.ts';

export class ServiceBundleSource implements BundleSource {
  readonly #config: BundleServiceConfig;
  readonly #source: string;
  readonly #verifier: BundleVerifier;
  readonly #intake: Intake;
  readonly #timers: SourceTimers;
  readonly #random: () => number;
  readonly #abort = new AbortController();
  #started = false;
  #timer: unknown;
  #inflight: Promise<void> | undefined;
  /** Consecutive failures: OPA's `retry`. */
  #retries = 0;
  /** ETag and content hash of the bundle last handed over. */
  #etag: string | undefined;
  #activeHash: string | undefined;

  constructor(config: BundleServiceConfig, verifier: BundleVerifier, intake: Intake, timers: SourceTimers, random: () => number) {
    this.#config = config;
    this.#source = redactUrl(config.url);
    this.#verifier = verifier;
    this.#intake = intake;
    this.#timers = timers;
    this.#random = random;
  }

  start(onBundle: (bundle: Bundle) => void, onError: (err: Error) => void): void {
    if (this.#started || this.#intake.stopped) return;
    this.#started = true;
    this.#intake.bind({ onBundle, onError });
    this.#schedule(0);
  }

  ready(): boolean {
    return this.#intake.delivered;
  }

  async stop(): Promise<void> {
    this.#intake.stop();
    this.#timers.clearTimeout(this.#timer);
    this.#abort.abort(new Error('bundle source stopped'));
    await this.#inflight;
  }

  #schedule(delayMs: number): void {
    if (this.#intake.stopped) return;
    this.#timer = this.#timers.setTimeout(() => {
      const poll: Promise<void> = this.#poll().finally(() => {
        // The next poll may already be running (its timer can fire first): keep it.
        if (this.#inflight === poll) this.#inflight = undefined;
      });
      this.#inflight = poll;
    }, delayMs);
  }

  /** One poll; schedules the next. Never rejects. */
  async #poll(): Promise<void> {
    const { polling } = this.#config;
    let outcome: true | BundleError;
    try {
      outcome = await this.#fetchOnce();
    } catch (err) {
      if (this.#intake.stopped) return;
      // Not a bundle problem but a bug; still never let it end the polling loop.
      outcome = new BundleError('bundle_unavailable', `${this.#source}: unexpected failure: ${(err as Error).message}`, { cause: err });
    }
    if (this.#intake.stopped) return;
    if (outcome === true) {
      this.#retries = 0;
      this.#schedule(pollDelayMs(polling.min_delay_seconds, polling.max_delay_seconds, this.#random));
      return;
    }
    // OPA counts the retry once its delay has elapsed: the first retry waits 0.
    const delay = backoffDelayMs(this.#retries, polling.max_delay_seconds, this.#random);
    this.#retries++;
    // A refused bundle was already reported; a transient failure is logged with its retry.
    if (outcome.reason === 'bundle_unavailable' || outcome.reason === 'bundle_timeout') this.#intake.failed(outcome, this.#source, delay);
    this.#schedule(delay);
  }

  /** `true` when the newest bundle is active afterwards, else the failure. */
  async #fetchOnce(): Promise<true | BundleError> {
    const intake = this.#intake;
    let result: Awaited<ReturnType<typeof fetchBundle>>;
    try {
      result = await fetchBundle(this.#config.url, {
        etag: this.#etag,
        headers: this.#config.headers,
        timeoutMs: this.#config.timeout_ms,
        maxBytes: this.#config.max_download_bytes,
        signal: this.#abort.signal,
      });
    } catch (err) {
      if (intake.stopped || !(err instanceof BundleError)) throw err;
      intake.countRequest('error');
      // An oversized bundle did arrive, and is refused; the other failures are transient.
      if (err.reason === 'bundle_too_large') {
        this.#etag = undefined;
        intake.refuse(err, this.#source);
      }
      return err;
    }
    if (result.status === 'not_modified') {
      intake.countRequest('not_modified');
      this.#etag = result.etag;
      intake.upToDate();
      return true;
    }
    intake.countRequest('modified');
    const hash = contentHash(result.bytes);
    if (hash === this.#activeHash) {
      // A server without ETags sends the same bytes again: nothing new to activate.
      this.#etag = result.etag;
      intake.upToDate();
      return true;
    }
    let bundle: Bundle;
    try {
      bundle = await decodeVerified(result.bytes, this.#source, this.#verifier);
    } catch (err) {
      if (!(err instanceof BundleError)) throw err;
      this.#etag = undefined;
      intake.refuse(err, this.#source);
      return err;
    }
    if (intake.stopped) return true;
    this.#etag = result.etag;
    this.#activeHash = hash;
    intake.deliver(bundle, { etag: result.etag, bytes: result.bytes.length });
    return true;
  }
}
