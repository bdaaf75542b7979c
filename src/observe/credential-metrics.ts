/**
 * Credential-file metrics (`upstreams.<id>.credentials`, src/upstream/credentials.ts),
 * registered by `createMetrics`:
 *
 * - `regate_credential_reloads_total{upstream,credential,result}`: re-reads of a
 *   changed credential file, `success` (the new value is used from the next
 *   request) or `failure` (unreadable, empty, an invalid value: the previous
 *   value stays in use);
 * - `regate_credential_last_reload_timestamp_seconds{upstream,credential}`: when
 *   the value in use was read (startup, or the last successful reload).
 *
 * Labels are config ids and names only, never a value.
 */

import { Counter, Gauge, type Registry } from 'prom-client';
import { CREDENTIAL_RELOAD_RESULTS, type CredentialReloadResult } from '../upstream/credentials.ts';

export interface CredentialMetrics {
  /** The credentials of a version: their series start at 0 (and the timestamp at now when first seen). */
  configure(credentials: readonly { readonly upstream: string; readonly credential: string }[], nowSeconds?: number): void;
  /** Count one reload of a changed file; `success` also sets the timestamp. */
  reloaded(upstream: string, credential: string, result: CredentialReloadResult, nowSeconds?: number): void;
}

export function createCredentialMetrics(registry: Registry): CredentialMetrics {
  const registers = [registry];
  const reloads = new Counter({
    name: 'regate_credential_reloads_total',
    help: 'Re-reads of a changed credential file (upstreams.<id>.credentials.<name>.value_file), by result (failure: unreadable, empty or an invalid value; the previous value stays in use).',
    labelNames: ['upstream', 'credential', 'result'] as const,
    registers,
  });
  const last = new Gauge({
    name: 'regate_credential_last_reload_timestamp_seconds',
    help: 'Unix time the credential value in use was read (at startup or by the last successful reload).',
    labelNames: ['upstream', 'credential'] as const,
    registers,
    // Across workers (`workers` > 1): the oldest value in use, for staleness alerts.
    aggregator: 'min',
  });
  const seen = new Set<string>();
  return {
    configure(credentials, nowSeconds = Date.now() / 1000) {
      for (const { upstream, credential } of credentials) {
        const key = `${upstream}\0${credential}`;
        if (seen.has(key)) continue;
        seen.add(key);
        for (const result of CREDENTIAL_RELOAD_RESULTS) reloads.labels({ upstream, credential, result }).inc(0);
        last.labels({ upstream, credential }).set(nowSeconds);
      }
    },
    reloaded(upstream, credential, result, nowSeconds = Date.now() / 1000) {
      if (!CREDENTIAL_RELOAD_RESULTS.includes(result)) throw new TypeError(`unknown credential reload result ${JSON.stringify(result)}`);
      reloads.inc({ upstream, credential, result });
      if (result === 'success') last.labels({ upstream, credential }).set(nowSeconds);
    },
  };
}
