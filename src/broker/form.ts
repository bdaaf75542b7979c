/**
 * Strict `application/x-www-form-urlencoded` parsing for the token endpoint
 * (RFC 6749 §3.2, WHATWG URL "application/x-www-form-urlencoded parser").
 *
 * Refused with `invalid_request`: a percent sign not followed by two hex
 * digits, bytes that are not UTF-8, a parameter repeated (RFC 6749 §3.2:
 * "MUST NOT be included more than once") except `audience` and `resource`
 * (RFC 8693 §2.1 allows several), more than {@link MAX_PARAMS} parameters.
 * Parameters without a value are treated as omitted (RFC 6749 §3.1); unknown
 * ones are kept but never read.
 */

import { OAuthError } from './oauth-error.ts';

/** Parameters RFC 8693 allows more than once. */
const REPEATABLE: ReadonlySet<string> = new Set(['audience', 'resource']);
export const MAX_PARAMS = 64;
const PERCENT = /%(?![0-9A-Fa-f]{2})/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export type Form = ReadonlyMap<string, readonly string[]>;

function decode(part: string): string {
  if (PERCENT.test(part)) throw new OAuthError('invalid_request', 'form_malformed', 'the form body has a malformed percent-encoding');
  const plus = part.replaceAll('+', ' ');
  // Percent-decode to bytes, then strict UTF-8.
  const bytes: number[] = [];
  for (let i = 0; i < plus.length; i++) {
    const c = plus.charCodeAt(i);
    if (c === 0x25) {
      bytes.push(parseInt(plus.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 0x80) bytes.push(c);
    else for (const b of Buffer.from(plus[i]!)) bytes.push(b);
  }
  try {
    return utf8.decode(Uint8Array.from(bytes));
  } catch {
    throw new OAuthError('invalid_request', 'form_malformed', 'the form body is not UTF-8');
  }
}

/** Parse a form body. Throws OAuthError (`invalid_request`). */
export function parseForm(body: Buffer): Form {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new OAuthError('invalid_request', 'form_malformed', 'the form body is not UTF-8');
  }
  const form = new Map<string, string[]>();
  if (text === '') return form;
  const parts = text.split('&');
  if (parts.length > MAX_PARAMS) throw new OAuthError('invalid_request', 'form_malformed', `more than ${MAX_PARAMS} form parameters`);
  for (const part of parts) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decode(eq === -1 ? part : part.slice(0, eq));
    const value = eq === -1 ? '' : decode(part.slice(eq + 1));
    if (value === '') continue;
    const list = form.get(name);
    if (list === undefined) form.set(name, [value]);
    else if (REPEATABLE.has(name)) list.push(value);
    else throw new OAuthError('invalid_request', 'duplicate_parameter', `parameter ${JSON.stringify(name.slice(0, 64))} is included more than once (RFC 6749 §3.2)`);
  }
  return form;
}

/** The single value of `name`, or undefined. */
export function one(form: Form, name: string): string | undefined {
  return form.get(name)?.[0];
}
