/**
 * The OPA bundle protocol, client side: one conditional GET, and OPA's
 * polling and retry delays.
 *
 * The protocol is plain HTTP (OPA docs, "Bundle Service API"): `GET <url>`
 * answers 200 with the `.tar.gz` and an `ETag`, and the next poll sends that
 * ETag back in `If-None-Match`, so an unchanged bundle costs a 304 and no
 * parsing. Any static file server speaks it. regate asks for snapshot bundles
 * only (`Prefer: modes=snapshot`: delta bundles are not supported) and does
 * not implement long polling.
 *
 * Delays copy OPA's `v1/download/download.go`: after a success the next poll
 * is uniformly random in [min_delay, max_delay] (jitter spreads a fleet);
 * after the n-th consecutive failure the retry waits OPA's
 * `util.DefaultBackoff(100 ms, max_delay, n)`: 0 for the first retry, then
 * 100 ms × 1.6^n capped at max_delay, ±20 % jitter.
 */

import { STATUS_CODES } from 'node:http';
import { request } from '../upstream/undici.ts';
import { BundleError } from '../errors.ts';

/** Options of {@link fetchBundle}. */
export interface FetchBundleOptions {
  /** ETag of the active bundle; sent as If-None-Match. */
  readonly etag?: string | undefined;
  /** Configured extra headers (lower-case names). */
  readonly headers: Readonly<Record<string, string>>;
  /** Deadline for the whole exchange, body included. */
  readonly timeoutMs: number;
  /** Largest body accepted. */
  readonly maxBytes: number;
  /** Aborts the request (source stopped). */
  readonly signal?: AbortSignal;
}

/** One poll's outcome. */
export type FetchBundleResult =
  | { readonly status: 'not_modified'; readonly etag: string }
  | { readonly status: 'modified'; readonly bytes: Uint8Array; readonly etag: string | undefined };

/** `url` without query string or credentials, for logs and errors (presigned URLs carry secrets in the query). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '<invalid url>';
  }
}

const ignore = (): void => {};

/**
 * GET the bundle at `url`. Resolves with the bytes (200) or `not_modified`
 * (304 to our If-None-Match); rejects with a {@link BundleError}:
 * `bundle_unavailable` (connection failure, any other status),
 * `bundle_timeout` (deadline), `bundle_too_large` (body over `maxBytes`).
 * An abort through `options.signal` rejects with the signal's reason.
 */
export async function fetchBundle(url: string, options: FetchBundleOptions): Promise<FetchBundleResult> {
  const where = redactUrl(url);
  const deadline = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    deadline.abort(new Error('deadline'));
  }, options.timeoutMs);
  const signal = options.signal === undefined ? deadline.signal : AbortSignal.any([deadline.signal, options.signal]);
  const headers: Record<string, string> = {
    ...options.headers,
    accept: 'application/vnd.openpolicyagent.bundles, application/gzip, application/octet-stream;q=0.9, */*;q=0.1',
    prefer: 'modes=snapshot',
  };
  if (options.etag !== undefined) headers['if-none-match'] = options.etag;

  const fail = (err: unknown): never => {
    if (options.signal?.aborted) throw options.signal.reason;
    if (err instanceof BundleError) throw err;
    if (timedOut) throw new BundleError('bundle_timeout', `${where}: no complete answer within ${options.timeoutMs} ms`, { cause: err });
    throw new BundleError('bundle_unavailable', `${where}: request failed: ${(err as Error).message}`, { cause: err });
  };

  try {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      // undici's request follows no redirects: a redirect could carry the configured credentials elsewhere.
      res = await request(url, { method: 'GET', headers, signal, headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs });
    } catch (err) {
      return fail(err);
    }
    try {
      const rawEtag = res.headers.etag;
      const etag = typeof rawEtag === 'string' && rawEtag !== '' ? rawEtag : undefined;
      if (res.statusCode === 304) {
        if (options.etag === undefined) throw new BundleError('bundle_unavailable', `${where}: the server answered 304 Not Modified to an unconditional request`);
        // OPA keeps the previous ETag when a 304 carries none.
        return { status: 'not_modified', etag: etag ?? options.etag };
      }
      if (res.statusCode !== 200) {
        const hint = res.statusCode >= 300 && res.statusCode < 400 ? ' (redirects are not followed: configure the final URL)' : '';
        throw new BundleError('bundle_unavailable', `${where}: the server answered ${res.statusCode} ${STATUS_CODES[res.statusCode] ?? ''}`.trimEnd() + hint);
      }
      const declared = Number(res.headers['content-length']);
      if (declared > options.maxBytes) {
        throw new BundleError('bundle_too_large', `${where}: the bundle is ${declared} bytes, more than policy.service.max_download_bytes (${options.maxBytes})`);
      }
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const chunk of res.body) {
        total += (chunk as Buffer).length;
        if (total > options.maxBytes) {
          throw new BundleError('bundle_too_large', `${where}: the bundle is more than policy.service.max_download_bytes (${options.maxBytes}) bytes`);
        }
        chunks.push(chunk as Buffer);
      }
      return { status: 'modified', bytes: Buffer.concat(chunks, total), etag };
    } catch (err) {
      return fail(err);
    } finally {
      // Release the socket whatever happened. An unconsumed undici body emits
      // 'error' when destroyed: swallow it, the outcome is already decided.
      if (!res.body.destroyed) {
        res.body.on('error', ignore);
        res.body.destroy();
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

/** OPA's `minRetryDelay`. */
const MIN_RETRY_DELAY_MS = 100;

/** Delay before the next poll after a success: uniform in [min, max] seconds (OPA). */
export function pollDelayMs(minDelaySeconds: number, maxDelaySeconds: number, random: () => number = Math.random): number {
  return (minDelaySeconds + (maxDelaySeconds - minDelaySeconds) * random()) * 1000;
}

/**
 * Delay before retry number `retries` (0 = the first retry after a failure):
 * OPA's `util.DefaultBackoff(100 ms, max, retries)`: 0, then 100 ms × 1.6^n
 * capped at `maxDelaySeconds`, ±20 % jitter.
 */
export function backoffDelayMs(retries: number, maxDelaySeconds: number, random: () => number = Math.random): number {
  if (retries <= 0) return 0;
  const max = maxDelaySeconds * 1000;
  let backoff = MIN_RETRY_DELAY_MS;
  // OPA's loop: grow while under the cap; bounded by `retries` and by the cap.
  for (let n = retries; backoff < max && n > 0; n--) backoff *= 1.6;
  if (backoff > max) backoff = max;
  return Math.max(0, backoff * (1 + 0.2 * (random() * 2 - 1)));
}
