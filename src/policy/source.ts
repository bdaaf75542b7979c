/**
 * Policy bundle sources: where the active bundle comes from, and when a new
 * one is ready. The reload manager consumes this interface; it decides what to
 * do with a bundle (compile it into a new runtime and swap it in) or with a
 * refusal (keep the last good runtime).
 *
 * - `policy.bundle`: a local file, watched (src/policy/file-source.ts).
 * - `policy.service`: an OPA bundle server, polled with ETags
 *   (src/policy/service-source.ts, src/policy/bundle-client.ts).
 * - `policy.signing`: OPA bundle signatures, verified on every bundle of
 *   either source before it is handed over (src/policy/signatures.ts).
 *
 * Every bundle handed over has been decoded and verified; a bundle that fails
 * either is refused: counted (`regate_bundle_activations_total{result="error"}`,
 * `regate_bundle_errors_total{reason}`), logged with its stable reason, and
 * reported through `onError` as a {@link BundleError}. Transient download
 * failures of `policy.service` (unreachable, timeout, 5xx) are counted, logged
 * and retried with backoff, and do not call `onError`: nothing was refused,
 * and the server being down for an hour must not look like an hour of bad
 * bundles.
 */

import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { PolicyConfig } from '../config/types.ts';
import { BundleError } from '../errors.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { Bundle } from './bundle.ts';
import { fetchBundle, redactUrl } from './bundle-client.ts';
import { FileBundleSource } from './file-source.ts';
import { decodeVerified, Intake } from './intake.ts';
import { ServiceBundleSource } from './service-source.ts';
import { createBundleVerifier } from './signatures.ts';

export interface BundleSource {
  /**
   * Start delivering bundles: `onBundle` for every new verified bundle (the
   * first one too), `onError` for a refused one (a {@link BundleError}: an
   * unreadable file, an invalid or badly signed bundle). Never throws; calling
   * it twice, or after `stop()`, does nothing.
   */
  start(onBundle: (bundle: Bundle) => void, onError: (err: Error) => void): void;
  /** A first bundle has been delivered. */
  ready(): boolean;
  /** Stop watching / polling, abort a request in flight; no callback runs afterwards. */
  stop(): Promise<void>;
}

/** Timer functions, replaceable in tests (a controllable clock for polling and backoff). */
export interface SourceTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Options of {@link createBundleSource}. */
export interface BundleSourceOptions {
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The config file (names `policy.signing` problems in ConfigErrors). */
  readonly configFile: string;
  /** Tests: timers (default: node's, unref'd so a source never keeps a process alive). */
  readonly timers?: SourceTimers;
  /** Tests: jitter source in [0, 1) (default Math.random). */
  readonly random?: () => number;
  /** Tests: wall clock in ms (default Date.now), for `regate_bundle_last_success_timestamp_seconds`. */
  readonly now?: () => number;
  /**
   * Whether this source sets the bundle freshness gauges
   * (`regate_bundle_last_success_timestamp_seconds`, `regate_bundle_last_check_timestamp_seconds`).
   * Default true; false for a shadow candidate's source, which must not mask the enforced one's staleness.
   */
  readonly freshness?: boolean;
  /** File source: quiet period after the last file event. Default 100 ms. */
  readonly debounceMs?: number;
  /** File source: period of the stat safety net (file systems without events). Default 5000 ms. */
  readonly recheckMs?: number;
}

const NODE_TIMERS: SourceTimers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout | undefined);
  },
};

/**
 * The bundle source `policy` configures: a watched file (`policy.bundle`) or
 * a polled server (`policy.service`), verifying signatures when
 * `policy.signing` is set. Nothing happens until `start()`.
 *
 * Throws ConfigError (file `options.configFile`) when the signing key cannot
 * be used (missing, private, wrong type for the algorithm), and TypeError when
 * `policy` sets neither source (the config loader guarantees exactly one).
 */
export function createBundleSource(policy: PolicyConfig, options: BundleSourceOptions): BundleSource {
  const verifier = createBundleVerifier(policy.signing, options.configFile);
  const timers = options.timers ?? NODE_TIMERS;
  const intake = new Intake(options.logger, options.metrics, options.now ?? Date.now, options.freshness ?? true);
  if (policy.service !== undefined) return new ServiceBundleSource(policy.service, verifier, intake, timers, options.random ?? Math.random);
  if (policy.bundle !== undefined) {
    return new FileBundleSource(policy.bundle, verifier, intake, timers, { debounceMs: options.debounceMs ?? 100, recheckMs: options.recheckMs ?? 5000 });
  }
  throw new TypeError('createBundleSource: policy sets neither bundle nor service');
}

/**
 * Read `policy`'s bundle once, verified as configured: the file, or one
 * unconditional GET of the service. For `regate check` and tools; a server
 * uses {@link createBundleSource}. Rejects with a {@link BundleError} (or a
 * ConfigError for an unusable signing key).
 */
export async function loadPolicyBundle(policy: PolicyConfig, options: { readonly configFile: string; readonly signal?: AbortSignal }): Promise<Bundle> {
  const verifier = createBundleVerifier(policy.signing, options.configFile);
  if (policy.service !== undefined) {
    const s = policy.service;
    const result = await fetchBundle(s.url, {
      headers: s.headers,
      timeoutMs: s.timeout_ms,
      maxBytes: s.max_download_bytes,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    // Without If-None-Match a conforming server never answers 304 (fetchBundle refuses one).
    if (result.status !== 'modified') throw new TypeError('unreachable: 304 to an unconditional request');
    return decodeVerified(result.bytes, redactUrl(s.url), verifier);
  }
  if (policy.bundle === undefined) throw new TypeError('loadPolicyBundle: policy sets neither bundle nor service');
  let bytes: Buffer;
  try {
    bytes = await readFile(policy.bundle);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message;
    throw new BundleError('bundle_unavailable', `${policy.bundle}: cannot read the policy bundle: ${why}`, { cause: err });
  }
  return decodeVerified(bytes, policy.bundle, verifier);
}
