/**
 * `routes[].upstream_token`: the downscoped token regate gives the upstream
 * instead of the caller's. `sub` and the `act` chain of the caller's token are
 * kept; `scope` is the configured (or decided) scopes that the caller's token
 * also holds; `aud` the route's audience; `exp` at most `ttl_s` (capped by
 * `broker.max_ttl_s`) and never past the caller's `exp`.
 *
 * Cached per (issuer, subject, audience, scope set, caller exp ceiling) until
 * {@link refreshMargin} before expiry; bounded LRU (`broker.upstream_token_cache`).
 */

import type { Identity } from '../authn/types.ts';
import type { BrokerConfig, UpstreamTokenConfig } from '../config/types.ts';
import type { KeyRing } from '../signing/keys.ts';
import { AuthnError } from '../errors.ts';
import type { Verdict } from '../pipeline/verdict.ts';
import type { Runtime } from '../runtime.ts';
import { newJti, signJwt } from '../signing/mint.ts';
import type { BrokerMetrics } from './metrics.ts';

interface Entry {
  readonly token: string;
  readonly exp: number;
  readonly kid: string;
}

/** Reuse a token until this many seconds before its `exp`: 10% of its life, at least 5 s. */
export function refreshMargin(ttl: number): number {
  return Math.max(5, Math.ceil(ttl / 10));
}

export class UpstreamTokenMinter {
  readonly #config: BrokerConfig;
  readonly #keys: KeyRing;
  readonly #now: () => number;
  readonly #metrics: BrokerMetrics;
  readonly #cache = new Map<string, Entry>();

  constructor(options: { readonly config: BrokerConfig; readonly keys: KeyRing; readonly now: () => number; readonly metrics: BrokerMetrics }) {
    this.#config = options.config;
    this.#keys = options.keys;
    this.#now = options.now;
    this.#metrics = options.metrics;
  }

  /**
   * The token for `identity` on a route with `spec`; `decided` is the policy's
   * `upstream_scopes` when `spec.scopes` is `decision`. Undefined when no token
   * can be minted (the caller's token expires within a second): the caller refuses.
   */
  token(identity: Identity, spec: UpstreamTokenConfig, decided: readonly string[]): string | undefined {
    const wanted = spec.scopes === 'decision' ? decided : spec.scopes;
    const held = new Set(identity.scopes);
    const scopes = [...new Set(wanted.filter((s) => held.has(s)))].sort();
    const now = Math.floor(this.#now());
    const ttl = Math.min(spec.ttl_s, this.#config.max_ttl_s, Math.floor(identity.exp) - now);
    if (ttl < 1) return undefined;
    const key = `${identity.iss}\u0000${identity.sub}\u0000${spec.audience}\u0000${scopes.join(' ')}\u0000${Math.floor(identity.exp)}`;
    const active = this.#keys.active();
    const hit = this.#cache.get(key);
    if (hit !== undefined && hit.kid === active.kid && hit.exp - refreshMargin(spec.ttl_s) > now) {
      this.#cache.delete(key);
      this.#cache.set(key, hit);
      this.#metrics.upstreamToken('cached');
      return hit.token;
    }
    const act = identity.claims.act;
    const payload = {
      iss: this.#config.issuer,
      sub: identity.sub,
      aud: spec.audience,
      ...(scopes.length > 0 ? { scope: scopes.join(' ') } : {}),
      ...(typeof act === 'object' && act !== null && !Array.isArray(act) ? { act } : {}),
      jti: newJti(),
      iat: now,
      nbf: now,
      exp: now + ttl,
    };
    const token = signJwt(active, payload, this.#config.token_type);
    const max = this.#config.upstream_token_cache.max_entries;
    if (max > 0) {
      this.#cache.delete(key);
      if (this.#cache.size >= max) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(key, { token, exp: payload.exp, kid: active.kid });
    }
    this.#metrics.upstreamToken('minted');
    return token;
  }
}

/**
 * The `Authorization` value for an allowed request on a route with `upstream_token`
 * (the proxy's HTTP/1.1 and HTTP/2 front ends). Throws AuthnError (401) when the
 * caller's token expires too soon to mint one: nothing is forwarded.
 */
export function upstreamAuthorization(rt: Runtime, verdict: Verdict, spec: UpstreamTokenConfig): string {
  const identity = verdict.identity;
  const decided = spec.scopes === 'decision' ? upstreamScopesOf(verdict.result) : [];
  const token = identity === null || rt.broker === null ? undefined : rt.broker.upstreamTokens.token(identity, spec, decided);
  if (token === undefined) throw new AuthnError('token_expired', 'the token expires too soon to mint the upstream token');
  return `Bearer ${token}`;
}

/** The route policy result's `upstream_scopes`; anything but an array of strings counts as none (fewer scopes, never more). */
function upstreamScopesOf(result: unknown): readonly string[] {
  const value = typeof result === 'object' && result !== null ? (result as Record<string, unknown>).upstream_scopes : undefined;
  return Array.isArray(value) && value.every((s) => typeof s === 'string') ? (value as string[]) : [];
}
