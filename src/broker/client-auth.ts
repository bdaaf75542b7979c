/**
 * `private_key_jwt` client authentication (RFC 7523 §2.2 / §3, OpenID Connect
 * Core §9): `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
 * and a `client_assertion` JWT signed by one of the client's configured keys.
 *
 * Checked: the client is configured (by `iss`/`sub`, and `client_id` when sent
 * equals them), the algorithm is in its allowlist (before any key lookup, so
 * `none` / HS256 never verify), the signature, `aud` (the broker issuer or the
 * token endpoint URL), `exp` present and at most {@link MAX_ASSERTION_LIFETIME_S}
 * ahead, `jti` present and never seen before. Every failure is `invalid_client` (401).
 */

import { readFileSync } from 'node:fs';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { BrokerClientConfig } from '../config/types.ts';
import { ConfigError } from '../errors.ts';
import { OAuthError } from './oauth-error.ts';
import type { ReplayStore } from './replay.ts';

export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Longest accepted assertion lifetime: it bounds how long its `jti` is held. */
export const MAX_ASSERTION_LIFETIME_S = 300;

interface Client {
  readonly id: string;
  readonly getKey: JWTVerifyGetKey;
  readonly algorithms: readonly string[];
}

export interface ClientAuthenticator {
  /** Verify an assertion; resolves the client id. Rejects only with OAuthError. */
  verify(assertion: string, clientId: string | undefined): Promise<string>;
}

/** Compile the configured clients (their JWKS files read once per runtime). */
export function createClientAuthenticator(
  clients: readonly BrokerClientConfig[],
  options: { readonly audiences: readonly string[]; readonly replay: ReplayStore; readonly now: () => number; readonly source: string },
): ClientAuthenticator {
  const byId = new Map<string, Client>();
  clients.forEach((c, i) => {
    let jwks: unknown;
    try {
      jwks = JSON.parse(readFileSync(c.jwks_file, 'utf8'));
      byId.set(c.id, { id: c.id, getKey: createLocalJWKSet(jwks as never), algorithms: c.algorithms });
    } catch (err) {
      throw new ConfigError(options.source, `/broker/clients/${i}/jwks_file`, `${c.jwks_file}: not a readable JWKS: ${(err as Error).message}`, { cause: err });
    }
  });
  const refuse = (reason: string, description: string, cause?: unknown): OAuthError => new OAuthError('invalid_client', reason, description, 401, cause === undefined ? undefined : { cause });
  return {
    async verify(assertion, clientId) {
      let claims: Record<string, unknown>;
      try {
        claims = decodeJwt(assertion);
      } catch (err) {
        throw refuse('client_assertion_malformed', 'the client assertion is not a JWT', err);
      }
      const iss = claims.iss;
      if (typeof iss !== 'string') throw refuse('client_assertion_malformed', 'the client assertion has no iss');
      const client = byId.get(iss);
      if (client === undefined) throw refuse('unknown_client', 'the client is not registered');
      if (clientId !== undefined && clientId !== client.id) throw refuse('client_id_mismatch', 'client_id does not match the client assertion');
      let payload: Record<string, unknown>;
      try {
        ({ payload } = await jwtVerify(assertion, client.getKey, {
          algorithms: [...client.algorithms],
          issuer: client.id,
          subject: client.id,
          audience: [...options.audiences],
          requiredClaims: ['exp', 'jti'],
          currentDate: new Date(options.now() * 1000),
          clockTolerance: 30,
        }));
      } catch (err) {
        throw refuse('client_assertion_invalid', `the client assertion does not verify: ${(err as { code?: string }).code ?? 'invalid'}`, err);
      }
      const exp = payload.exp as number;
      if (exp - options.now() > MAX_ASSERTION_LIFETIME_S) throw refuse('client_assertion_invalid', `the client assertion expires more than ${MAX_ASSERTION_LIFETIME_S} s from now`);
      if (typeof payload.jti !== 'string' || payload.jti === '') throw refuse('client_assertion_invalid', 'the client assertion has no jti');
      const used = options.replay.use(`client\u0000${client.id}\u0000${payload.jti}`, exp + 30);
      if (used === 'replayed') throw refuse('assertion_replayed', 'the client assertion was already used (RFC 7523 §3: single use)');
      if (used === 'full') throw new OAuthError('temporarily_unavailable', 'replay_store_full', 'too many single-use grants in flight: retry later', 503);
      return client.id;
    },
  };
}
