/**
 * The broker entrypoint's result → {@link GrantDecision}, and regate's own
 * limits on top of it. Like src/policy/decision.ts: anything malformed is a
 * PolicyError (the exchange is refused, fail closed); unknown keys are ignored.
 *
 * Result (an object; `true`/`false` mean allow/deny with nothing chosen):
 * `allow` (boolean), `reasons` (strings), `error` (on deny: `invalid_grant`
 * (default), `invalid_scope`, `invalid_target`, `unauthorized_client`),
 * `scopes` (strings), `audience` (string), `ttl_s` (positive integer),
 * `authorization_details` (array of objects with a string `type`),
 * `claims` (object; may not set registered claims).
 */

import { PolicyError } from '../errors.ts';
import { POLICY_ERROR_CODES, type OAuthErrorCode } from './oauth-error.ts';

/** Claims regate sets itself: a policy's `claims` may not name them. */
export const REGISTERED_CLAIMS: ReadonlySet<string> = new Set([
  'iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'act', 'may_act', 'scope', 'client_id', 'authorization_details', 'azp', 'cnf', 'auth_time', 'acr', 'amr',
]);
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

export interface GrantDecision {
  readonly allow: boolean;
  readonly reasons: readonly string[];
  readonly error: OAuthErrorCode;
  readonly scopes?: readonly string[];
  readonly audience?: string;
  readonly ttl_s?: number;
  readonly authorization_details?: readonly Record<string, unknown>[];
  readonly claims: Readonly<Record<string, unknown>>;
}

const invalid = (message: string): PolicyError => new PolicyError('policy_invalid_result', `invalid broker policy result: ${message}`);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function normalizeGrant(raw: unknown): GrantDecision {
  if (typeof raw === 'boolean') return { allow: raw, reasons: [], error: 'invalid_grant', claims: {} };
  if (!isObj(raw)) throw invalid('expected a boolean or an object with "allow"');
  if (typeof raw.allow !== 'boolean') throw invalid('"allow" must be a boolean');
  const reasons = raw.reasons ?? [];
  if (!Array.isArray(reasons) || !reasons.every((r) => typeof r === 'string')) throw invalid('"reasons" must be an array of strings');
  let error: OAuthErrorCode = 'invalid_grant';
  if (raw.error !== undefined) {
    if (typeof raw.error !== 'string' || !POLICY_ERROR_CODES.has(raw.error)) throw invalid(`"error" must be one of ${[...POLICY_ERROR_CODES].join(', ')}`);
    error = raw.error as OAuthErrorCode;
  }
  const out: { -readonly [K in keyof GrantDecision]: GrantDecision[K] } = { allow: raw.allow, reasons: reasons as string[], error, claims: {} };
  if (raw.scopes !== undefined) {
    if (!Array.isArray(raw.scopes) || !raw.scopes.every((s) => typeof s === 'string' && SCOPE_TOKEN.test(s))) throw invalid('"scopes" must be an array of scope-tokens');
    out.scopes = [...new Set(raw.scopes as string[])];
  }
  if (raw.audience !== undefined) {
    if (typeof raw.audience !== 'string' || raw.audience === '') throw invalid('"audience" must be a non-empty string');
    out.audience = raw.audience;
  }
  if (raw.ttl_s !== undefined) {
    if (typeof raw.ttl_s !== 'number' || !Number.isInteger(raw.ttl_s) || raw.ttl_s < 1) throw invalid('"ttl_s" must be a positive integer');
    out.ttl_s = raw.ttl_s;
  }
  if (raw.authorization_details !== undefined) out.authorization_details = authorizationDetails(raw.authorization_details, invalid);
  if (raw.claims !== undefined) {
    if (!isObj(raw.claims)) throw invalid('"claims" must be an object');
    for (const name of Object.keys(raw.claims)) if (REGISTERED_CLAIMS.has(name)) throw invalid(`"claims" may not set the registered claim ${JSON.stringify(name)}`);
    out.claims = raw.claims;
  }
  return out;
}

/** RFC 9396 §2: an array of objects, each with a string `type`. */
export function authorizationDetails(value: unknown, fail: (message: string) => Error): Record<string, unknown>[] {
  if (!Array.isArray(value)) throw fail('authorization_details must be a JSON array');
  if (value.length > 32) throw fail('authorization_details has more than 32 entries');
  for (const d of value) {
    if (!isObj(d) || typeof d.type !== 'string' || d.type === '') throw fail('every authorization_details entry must be an object with a string "type"');
  }
  return value as Record<string, unknown>[];
}

/** Scope-tokens of a `scope` parameter (RFC 6749 §3.3); undefined when it is malformed. */
export function parseScope(value: string): string[] | undefined {
  const parts = value.split(' ');
  if (!parts.every((p) => SCOPE_TOKEN.test(p))) return undefined;
  return [...new Set(parts)];
}
