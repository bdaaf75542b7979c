/**
 * A bundle source as the reload manager holds it: the source, the settings it
 * was created from, the latest bundle it delivered, and its first delivery as
 * a promise (a reload that starts a fresh source waits for it).
 */

import type { Bundle } from '../policy/bundle.ts';
import type { BundleSource } from '../policy/source.ts';

/** One bundle source and the latest bundle it delivered. */
export class SourceSlot {
  /** A hash of the source's settings: a reload keeps the slot while they are unchanged. */
  readonly key: string;
  /** What logs may call it: the file path, or the server URL without credentials. */
  readonly label: string;
  readonly local: boolean;
  readonly source: BundleSource;
  latest: Bundle | null = null;
  /** Deliveries reach the manager only once the slot serves the running version. */
  live = false;
  readonly first: Promise<Bundle>;

  constructor(key: string, label: string, local: boolean, source: BundleSource, onBundle: (slot: SourceSlot) => void, onError: (slot: SourceSlot, err: Error) => void) {
    this.key = key;
    this.label = label;
    this.local = local;
    this.source = source;
    let settle: { resolve: (b: Bundle) => void; reject: (e: Error) => void } | undefined;
    this.first = new Promise<Bundle>((resolve, reject) => (settle = { resolve, reject }));
    // Nobody may be waiting (a remote source at startup): a refused first bundle is then only reported.
    this.first.catch(() => {});
    source.start(
      (bundle) => {
        this.latest = bundle;
        settle?.resolve(bundle);
        settle = undefined;
        if (this.live) onBundle(this);
      },
      (err) => {
        settle?.reject(err);
        settle = undefined;
        if (this.live) onError(this, err);
      },
    );
  }
}

/** `p`, or a rejection after `ms` saying `what` did not happen. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
