/**
 * Claim mapping: verified JWT claims → the {@link Identity} fields a policy sees.
 *
 * Runs only on a payload whose signature and registered claims jose has
 * already verified. Mapping is deliberately literal (no normalisation beyond
 * what an RFC prescribes) so that a policy author can predict exactly which
 * strings reach `input.subject`:
 *
 * - `scopes`: a string is split on SP, the `scope` syntax of RFC 6749 §3.3 that
 *   RFC 8693 §4.2 reuses for the JWT `scope` claim; an array (`scp`-style, as
 *   several IdPs emit) is taken item by item.
 * - `roles` / `groups`: an array of strings, or a single string taken as ONE
 *   value. Never split: directory group names contain spaces ("Domain Admins"),
 *   and splitting would hand a policy a privileged-looking "Admins".
 * - Non-string and empty-string array items are ignored (mixed arrays occur in
 *   the wild, e.g. group objects next to names). Fewer list items can only
 *   mean fewer grants for an allowlist policy; the raw claims stay available
 *   to policies as `input.token`.
 * - A list claim of any other type (number, object, boolean), a non-string
 *   `sub`, or a non-string `tenant` is a token the mapping cannot represent
 *   faithfully: `AuthnError('invalid_claim')` — fail closed rather than guess.
 */
import { AuthnError } from '../errors.ts';
import type { ClaimMapping, IssuerConfig } from '../config/types.ts';
import type { Identity } from './types.ts';

/** A claim dot path split once at startup. */
export interface ClaimPath {
  /** The path as configured, e.g. `realm_access.roles`. */
  readonly path: string;
  readonly segments: readonly string[];
}

/** The four {@link ClaimMapping} paths, compiled. */
export interface CompiledClaimMapping {
  readonly roles: ClaimPath;
  readonly groups: ClaimPath;
  readonly scopes: ClaimPath;
  readonly tenant: ClaimPath;
}

/**
 * Split a dot path once. Throws `TypeError` on an empty path or an empty
 * segment (`a..b`): the config loader should have refused it.
 */
export function compileClaimPath(path: string): ClaimPath {
  if (typeof path !== 'string' || path === '') throw new TypeError('claim path must be a non-empty string');
  const segments = path.split('.');
  // A path like `https://example.com/roles` (Auth0 namespaced claims) has
  // dots but no empty segments; it is resolved as an exact key first anyway.
  if (segments.some((s) => s === '')) throw new TypeError(`claim path has an empty segment: ${JSON.stringify(path)}`);
  return Object.freeze({ path, segments: Object.freeze(segments) });
}

/** Compile a {@link ClaimMapping} (startup only). */
export function compileClaimMapping(mapping: ClaimMapping): CompiledClaimMapping {
  return Object.freeze({
    roles: compileClaimPath(mapping.roles),
    groups: compileClaimPath(mapping.groups),
    scopes: compileClaimPath(mapping.scopes),
    tenant: compileClaimPath(mapping.tenant),
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The value at a dot path (`realm_access.roles`) in a claims object, or
 * `undefined`.
 *
 * - An own top-level key equal to the whole path wins, so namespaced claim
 *   names that contain dots (`https://example.com/roles`) work as-is.
 * - Otherwise each segment must be an own property of a plain (non-array)
 *   object: no prototype walking (`constructor`, `__proto__` resolve only if
 *   the token literally carries them), no array indexing.
 */
export function claimAt(claims: unknown, path: string | ClaimPath): unknown {
  const compiled = typeof path === 'string' ? compileClaimPath(path) : path;
  if (!isRecord(claims)) return undefined;
  if (Object.hasOwn(claims, compiled.path)) return claims[compiled.path];
  let node: unknown = claims;
  for (const segment of compiled.segments) {
    if (!isRecord(node) || !Object.hasOwn(node, segment)) return undefined;
    node = node[segment];
  }
  return node;
}

/** Options for {@link toStringList}. */
export interface StringListOptions {
  /** Split a string value on SP (RFC 6749 §3.3 scope syntax). Default false. */
  readonly splitOnSpace?: boolean;
}

/**
 * Normalise a list-valued claim to its strings.
 *
 * `undefined`/`null` → `[]`; a string → one item (or its SP-separated
 * tokens with `splitOnSpace`); an array → its non-empty string items, others
 * ignored. Returns `undefined` for any other type so the caller can fail
 * closed with `invalid_claim`.
 */
export function toStringList(value: unknown, options: StringListOptions = {}): string[] | undefined {
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') {
    if (options.splitOnSpace) return value.split(' ').filter((s) => s !== '');
    return value === '' ? [] : [value];
  }
  if (Array.isArray(value)) {
    const out: string[] = [];
    for (const item of value) if (typeof item === 'string' && item !== '') out.push(item);
    return out;
  }
  return undefined;
}

function listClaim(payload: Record<string, unknown>, path: ClaimPath, splitOnSpace: boolean): readonly string[] {
  const list = toStringList(claimAt(payload, path), { splitOnSpace });
  if (list === undefined) {
    throw new AuthnError('invalid_claim', `claim "${path.path}" must be a string or an array of strings`, { detail: `claim=${path.path}` });
  }
  return Object.freeze(list);
}

/**
 * Deep-freeze a parsed JSON value in place. Iterative: a hostile 8 KiB token
 * can nest thousands of levels, which must not blow the stack.
 */
export function deepFreeze<T>(value: T): T {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node !== 'object' || node === null || Object.isFrozen(node)) continue;
    Object.freeze(node);
    for (const key of Object.keys(node)) stack.push((node as Record<string, unknown>)[key]);
  }
  return value;
}

/**
 * Build the {@link Identity} from a VERIFIED payload. Freezes the payload
 * (it becomes `identity.claims`, shared with later stages and possibly a
 * cache). Throws `AuthnError('invalid_claim')` when a mapped claim has a type
 * the identity cannot represent (see the module comment).
 *
 * @param compiled the issuer's precompiled mapping; compiled on the fly when
 *   omitted (tests, tools) — the authenticator always passes it.
 */
export function mapIdentity(
  payload: Record<string, unknown>,
  issuer: IssuerConfig,
  compiled: CompiledClaimMapping = compileClaimMapping(issuer.claims),
): Identity {
  const sub = payload.sub;
  if (sub !== undefined && typeof sub !== 'string') {
    throw new AuthnError('invalid_claim', 'claim "sub" must be a string', { detail: 'claim=sub' });
  }
  const tenant = claimAt(payload, compiled.tenant);
  if (tenant !== undefined && tenant !== null && typeof tenant !== 'string') {
    throw new AuthnError('invalid_claim', `claim "${compiled.tenant.path}" must be a string`, { detail: `claim=${compiled.tenant.path}` });
  }
  const exp = payload.exp;
  // jose has checked exp is a present number (requiredClaims); re-check so a
  // misuse of this function can never produce an identity without expiry.
  if (typeof exp !== 'number' || !Number.isFinite(exp)) {
    throw new AuthnError('invalid_claim', 'claim "exp" must be a number', { detail: 'claim=exp' });
  }
  return Object.freeze({
    sub: sub ?? '',
    iss: issuer.issuer,
    issuerId: issuer.id,
    roles: listClaim(payload, compiled.roles, false),
    groups: listClaim(payload, compiled.groups, false),
    scopes: listClaim(payload, compiled.scopes, true),
    tenant: typeof tenant === 'string' ? tenant : '',
    claims: deepFreeze(payload),
    exp,
  });
}
