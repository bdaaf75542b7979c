/**
 * Result set → {@link Decision}. The one place that decides what a policy
 * result means; everything it does not recognise is a PolicyError, so the
 * caller denies (fail closed).
 *
 * Accepted result values (the entrypoint's value):
 *
 * - `true` / `false`: allow / deny.
 * - an object: `allow` (boolean, required), `reasons` (array of strings),
 *   `status` (integer 400–499, used on deny), `headers` (added to the upstream
 *   request on allow) and `response_headers` (added to the client response),
 *   both objects of header name → string value, and `credentials` (array of
 *   credential names, src/upstream/credentials.ts: on allow, exactly these of
 *   the route's `credentials` are injected; checked against the route by
 *   `check`). Other keys are ignored.
 */

import { PolicyError } from '../errors.ts';
import { CREDENTIAL_NAME } from '../upstream/credentials.ts';
import { HOP_BY_HOP } from '../upstream/headers.ts';
import type { Decision } from './types.ts';

// RFC 9110 §5.1 field-name = token.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// What node:http accepts in a field value (HTAB, SP..~, obs-text): no CR, LF, NUL or other controls.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

// Headers that define message framing or the connection. A policy setting
// them could desynchronise regate and the upstream (request smuggling) or the
// client, so they are refused rather than filtered.
const FORBIDDEN_HEADERS: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'content-length', 'host']);

const EMPTY: Readonly<Record<string, string>> = Object.freeze({});
const NO_REASONS: readonly string[] = Object.freeze([]);

function invalid(message: string): PolicyError {
  return new PolicyError('policy_invalid_result', `invalid policy result: ${message}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function headerMap(value: unknown, field: string): Readonly<Record<string, string>> {
  if (value === undefined) return EMPTY;
  if (!isPlainObject(value)) throw invalid(`"${field}" must be an object of header name to string`);
  const entries = Object.entries(value);
  if (entries.length === 0) return EMPTY;
  const seen = new Set<string>();
  for (const [name, v] of entries) {
    if (!HEADER_NAME.test(name)) throw invalid(`"${field}" has an invalid header name ${JSON.stringify(name)}`);
    const lower = name.toLowerCase();
    if (FORBIDDEN_HEADERS.has(lower)) throw invalid(`"${field}" may not set ${JSON.stringify(name)}`);
    if (seen.has(lower)) throw invalid(`"${field}" sets ${JSON.stringify(name)} twice (header names are case-insensitive)`);
    seen.add(lower);
    if (typeof v !== 'string') throw invalid(`"${field}.${name}" must be a string`);
    if (!HEADER_VALUE.test(v)) throw invalid(`"${field}.${name}" has a control character or a character outside Latin-1`);
  }
  // fromEntries defines own properties, so a "__proto__" name stays a plain key.
  return Object.freeze(Object.fromEntries(entries) as Record<string, string>);
}

function reasonList(value: unknown): readonly string[] {
  if (value === undefined) return NO_REASONS;
  if (!Array.isArray(value) || !value.every((r) => typeof r === 'string')) throw invalid('"reasons" must be an array of strings');
  return value.length === 0 ? NO_REASONS : Object.freeze([...(value as string[])]);
}

function credentialList(value: unknown): readonly string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((n) => typeof n === 'string' && CREDENTIAL_NAME.test(n))) {
    throw invalid('"credentials" must be an array of credential names (lower-case identifiers)');
  }
  return Object.freeze([...new Set(value as string[])]);
}

function denyStatus(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 400 || value > 499) {
    throw invalid('"status" must be an integer from 400 to 499');
  }
  return value;
}

/**
 * Turn the SDK's result set (`[{ result: value }]`) into a Decision.
 *
 * Throws PolicyError with reason `policy_undefined` when the entrypoint is
 * undefined (empty set, no `result`), and `policy_invalid_result` for a
 * conflicting set (more than one result) or a value of the wrong shape.
 * `raw` is the result value as returned, for the decision log.
 */
export function normalizeDecision(resultSet: unknown): Decision {
  if (!Array.isArray(resultSet)) throw invalid('result set is not an array');
  if (resultSet.length === 0) throw new PolicyError('policy_undefined', 'policy decision is undefined');
  if (resultSet.length > 1) throw invalid(`conflicting results (${resultSet.length} results for one entrypoint)`);
  const first: unknown = resultSet[0];
  if (!isPlainObject(first) || !Object.hasOwn(first, 'result')) {
    throw new PolicyError('policy_undefined', 'policy decision is undefined (no result)');
  }
  const raw = first.result;
  if (typeof raw === 'boolean') {
    return Object.freeze({ allow: raw, reasons: NO_REASONS, headers: EMPTY, responseHeaders: EMPTY, raw });
  }
  if (!isPlainObject(raw)) {
    throw invalid(`expected a boolean or an object with "allow", got ${raw === null ? 'null' : Array.isArray(raw) ? 'an array' : `a ${typeof raw}`}`);
  }
  const allow = raw.allow;
  if (typeof allow !== 'boolean') throw invalid(`"allow" must be a boolean, got ${allow === undefined ? 'nothing' : JSON.stringify(typeof allow)}`);
  // Validate every field whatever the outcome: a malformed document is a
  // policy bug that should surface on the first request, not only on allows.
  const reasons = reasonList(raw.reasons);
  const status = denyStatus(raw.status);
  const headers = headerMap(raw.headers, 'headers');
  const responseHeaders = headerMap(raw.response_headers, 'response_headers');
  const credentials = credentialList(raw.credentials);
  const decision: Decision =
    allow || status === undefined
      ? { allow, reasons, headers: allow ? headers : EMPTY, responseHeaders, raw, ...(allow && credentials !== undefined ? { credentials } : {}) }
      : { allow, reasons, status, headers: EMPTY, responseHeaders, raw };
  return Object.freeze(decision);
}
