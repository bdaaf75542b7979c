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

/** The authentication stage: headers → verified identity. */
export interface Authenticator {
  /**
   * Verify the request's bearer token according to the route's `auth` mode.
   * - `none`: never looks at Authorization; resolves `null`.
   * - `optional`: no Authorization → `null`; a present but invalid token → AuthnError.
   * - `required`: no valid token → AuthnError.
   * Rejects only with `AuthnError` (typed, with a stable reason).
   */
  authenticate(headers: IncomingHttpHeaders, mode: AuthMode): Promise<Identity | null>;
  /** True once every issuer has usable keys (for /readyz). */
  ready(): boolean;
  /** Stop background work (JWKS timers). */
  close(): void;
}
