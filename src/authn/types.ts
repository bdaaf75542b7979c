import type { IncomingHttpHeaders } from 'node:http';
import type { AuthMode } from '../config/types.ts';

/** The verified caller. Built only from a token whose signature and claims were verified. */
export interface Identity {
  /** `sub` claim, '' when absent (and not required). */
  readonly sub: string;
  readonly iss: string;
  /** Config id of the issuer that verified the token. */
  readonly issuerId: string;
  readonly roles: readonly string[];
  readonly groups: readonly string[];
  readonly scopes: readonly string[];
  /** '' when the token carries no tenant. */
  readonly tenant: string;
  /** Every verified claim, as in the token payload. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** `exp` in seconds since the epoch. */
  readonly exp: number;
}

/**
 * What authentication reads from a request: the parsed headers and the raw
 * header list. Node keeps only the first `Authorization` in `headers` and drops
 * the rest; `rawHeaders` is the only place a duplicate is visible.
 */
export interface AuthnRequest {
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
}

/** Per-issuer result of loading keys before serving. */
export interface PrefetchResult {
  readonly issuerId: string;
  readonly ready: boolean;
}

/** The authentication stage: request headers → verified identity. */
export interface Authenticator {
  /**
   * Verify the request's bearer token according to the route's `auth` mode.
   * - `none`: never looks at Authorization; resolves `null`.
   * - `optional`: no Authorization → `null`; a present but invalid token → AuthnError.
   * - `required`: no valid token → AuthnError.
   * Rejects only with `AuthnError` (typed, with a stable reason); never throws.
   * May return the identity itself instead of a promise when it is known without
   * waiting (a token-cache hit): callers must not assume a promise.
   */
  authenticate(req: AuthnRequest, mode: AuthMode): Identity | null | Promise<Identity | null>;
  /** Load every issuer's keys (startup, before readiness). Never rejects. */
  prefetch(): Promise<readonly PrefetchResult[]>;
  /** True once every issuer has usable keys (for /readyz). */
  ready(): boolean;
  /** Stop background work (JWKS timers). */
  close(): void;
}
