/**
 * What every bundle source does with bytes it obtained: decode, verify the
 * signature, then hand the bundle over or refuse it — counted, logged, and
 * reported to the consumer's callbacks exactly once per outcome.
 */

import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { BundleError, ConfigError } from '../errors.ts';
import type { Metrics } from '../observe/metrics.ts';
import { decodeBundle, type Bundle } from './bundle.ts';
import type { BundleVerifier } from './signatures.ts';

/** The consumer's callbacks (see `BundleSource.start`). */
export interface BundleCallbacks {
  readonly onBundle: (bundle: Bundle) => void;
  readonly onError: (err: Error) => void;
}

/** Decode `bytes` and verify them with `verifier`. Rejects only with a {@link BundleError}. */
export async function decodeVerified(bytes: Uint8Array, source: string, verifier: BundleVerifier): Promise<Bundle> {
  try {
    return await decodeBundle(bytes, source, { verify: (files) => verifier.verify(files, source) });
  } catch (err) {
    if (err instanceof BundleError) throw err;
    if (err instanceof ConfigError) throw new BundleError('bundle_invalid', `not a usable bundle: ${err.message}`, { cause: err });
    throw err; // a bug, not the bundle's fault
  }
}

/** Content hash of bundle bytes, to recognise a bundle already handed over or refused. */
export function contentHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Logged when a bundle without a manifest revision is handed over (docs/bundles.md, "Revisions"). */
export const NO_REVISION_WARNING =
  'policy bundle has no revision: decision logs and regate_policy_bundle_info will say revision=""; build it with `opa build --revision <id>` (scripts/build-policy.mjs sets one)';

/** Counts, logs and reports the outcomes of one source. */
export class Intake {
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #now: () => number;
  readonly #freshness: boolean;
  #callbacks: BundleCallbacks | undefined;
  #delivered = false;
  #stopped = false;

  /** `freshness`: whether this source's checks set the freshness gauges (see `BundleSourceOptions.freshness`). */
  constructor(logger: Logger, metrics: Metrics, now: () => number, freshness = true) {
    this.#logger = logger;
    this.#metrics = metrics;
    this.#now = now;
    this.#freshness = freshness;
  }

  bind(callbacks: BundleCallbacks): void {
    this.#callbacks = callbacks;
  }

  /** A first bundle has been handed over. */
  get delivered(): boolean {
    return this.#delivered;
  }

  /** After this no callback runs again. */
  stop(): void {
    this.#stopped = true;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** A verified new bundle: count, log, hand over. */
  deliver(bundle: Bundle, fields: Record<string, unknown> = {}): void {
    if (this.#stopped) return;
    this.#metrics.bundleActivation('success');
    this.upToDate();
    this.#delivered = true;
    this.#logger.info({ bundle: bundle.source, revision: bundle.manifest.revision, ...fields }, 'policy bundle read and verified; handing it over for activation');
    if (bundle.manifest.revision === '') {
      // Decision logs and regate_policy_bundle_info would say revision="": no way to tell which policy decided.
      this.#logger.warn({ bundle: bundle.source }, NO_REVISION_WARNING);
    }
    try {
      this.#callbacks?.onBundle(bundle);
    } catch (err) {
      // The consumer's bug must not stop the source.
      this.#logger.error({ err }, 'bundle consumer failed (onBundle threw)');
    }
  }

  /** A bundle that was obtained (or a file that could not be read) and is refused: count, log, report. */
  refuse(err: BundleError, source: string): void {
    if (this.#stopped) return;
    this.#metrics.bundleActivation('error');
    this.#metrics.bundleError(err.reason);
    const still = this.#delivered ? 'the last good bundle keeps serving' : 'no bundle is active yet (not ready)';
    this.#logger.error({ bundle: source, reason: err.reason, err: err.message }, `policy bundle refused; ${still}`);
    try {
      this.#callbacks?.onError(err);
    } catch (thrown) {
      this.#logger.error({ err: thrown }, 'bundle consumer failed (onError threw)');
    }
  }

  /** A failed attempt to fetch (transient; retried): count and log, no callback. */
  failed(err: BundleError, source: string, retryInMs: number): void {
    if (this.#stopped) return;
    this.#metrics.bundleError(err.reason);
    const still = this.#delivered ? 'the last good bundle keeps serving' : 'no bundle is active yet (not ready)';
    this.#logger.warn({ bundle: source, reason: err.reason, err: err.message, retry_in_ms: Math.round(retryInMs) }, `policy bundle download failed; ${still}`);
  }

  /** Something worth an operator's attention that is not a bundle outcome (watch lost, a bug). */
  note(message: string, fields: Record<string, unknown> = {}): void {
    if (!this.#stopped) this.#logger.warn(fields, message);
  }

  /** Count one bundle server request. */
  countRequest(result: 'modified' | 'not_modified' | 'error'): void {
    if (!this.#stopped) this.#metrics.bundleRequest(result);
  }

  /** The newest bundle is known to be active (handed over, or the server answered 304): also a successful check. */
  upToDate(): void {
    if (this.#stopped || !this.#freshness) return;
    const now = this.#now() / 1000;
    this.#metrics.bundleUpToDate(now);
    this.#metrics.bundleChecked(now);
  }

  /** A check of the source found that the active bundle is still its newest (nothing new to hand over). */
  checked(): void {
    if (!this.#stopped && this.#freshness) this.#metrics.bundleChecked(this.#now() / 1000);
  }
}
