/**
 * Identity header values (`routes[].identity_headers`): how a verified
 * identity becomes a header value the upstream can decode without ambiguity.
 *
 * The encoding (README "Identity headers", a breaking change from the
 * "join with `,`, percent-encode only non-ASCII values" of earlier versions):
 *
 * - a value is a comma-separated list of items; a scalar is a list of one;
 * - inside an item every character is sent as is when it is visible ASCII
 *   (`!`..`~`) other than `%` and `,`; everything else — `%`, `,`, space,
 *   controls, non-ASCII — is percent-encoded as its UTF-8 bytes, upper-case
 *   hex (RFC 3986 §2.1 style);
 * - so a decoder splits on `,` and percent-decodes each item
 *   (`decodeURIComponent` does it): `["user","admin"]` → `user,admin`,
 *   `["user,admin"]` → `user%2Cadmin`, a claim literally `%61dmin` →
 *   `%2561dmin`, `Zoë` → `Zo%C3%AB`. Values without those characters (the
 *   usual `alice`, `user,admin`) are unchanged.
 *
 * A lone UTF-16 surrogate in a claim is sent as U+FFFD (`%EF%BF%BD`), which is
 * what OPA's JSON decoding makes of it too.
 */

import { claimAt } from '../authn/claims.ts';
import type { Identity } from '../authn/types.ts';

/** What a source needs of the exchange: the decision id and the matched route. */
export interface IdentityContext {
  readonly id: string;
  readonly route: { readonly config: { readonly id: string } } | null;
}

/** A compiled `identity_headers` source: the header value, or undefined to send none. */
export type IdentitySource = (identity: Identity | null, ex: IdentityContext) => string | undefined;

/**
 * Compile an identity-header source (`subject.roles`, `token.realm_access.roles`,
 * `route.id`, `decision.id`) into a getter, once per route at startup.
 */
export function identitySource(source: string): IdentitySource {
  if (source === 'route.id') return (_i, ex) => (ex.route === null ? undefined : encodeIdentityValue(ex.route.config.id));
  if (source === 'decision.id') return (_i, ex) => ex.id;
  if (source.startsWith('token.')) {
    const path = source.slice('token.'.length);
    return (i) => (i ? encodeIdentityValue(claimAt(i.claims, path)) : undefined);
  }
  const field = source.slice('subject.'.length) as 'sub' | 'iss' | 'tenant' | 'roles' | 'groups' | 'scopes';
  return (i) => (i ? encodeIdentityValue(i[field]) : undefined);
}

/**
 * Encode a claim value as described in the module doc. Strings, numbers and
 * booleans are one item; an array is a list of its string and number members
 * (other members are skipped). Undefined (no header) for anything else, for an
 * empty string and for an array with no usable member.
 */
export function encodeIdentityValue(v: unknown): string | undefined {
  if (typeof v === 'string') return v === '' ? undefined : encodeItem(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (!Array.isArray(v)) return undefined;
  let out: string | undefined;
  for (const x of v) {
    if (typeof x !== 'string' && typeof x !== 'number') continue;
    const item = typeof x === 'string' ? encodeItem(x) : String(x);
    out = out === undefined ? item : `${out},${item}`;
  }
  return out === '' ? undefined : out;
}

/** 1 for the characters an item carries as is: visible ASCII except `%` and `,`. */
const RAW: Uint8Array = (() => {
  const t = new Uint8Array(128);
  for (let c = 0x21; c <= 0x7e; c++) t[c] = 1;
  t[0x25] = 0;
  t[0x2c] = 0;
  return t;
})();

const HEX = '0123456789ABCDEF';

function encodeItem(s: string): string {
  let k = 0;
  for (; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c >= 0x80 || RAW[c] !== 1) break;
  }
  if (k === s.length) return s;
  let out = s.slice(0, k);
  // Buffer.from replaces a lone surrogate with U+FFFD instead of throwing (encodeURIComponent would).
  for (const b of Buffer.from(s.slice(k), 'utf8')) out += b < 0x80 && RAW[b] === 1 ? String.fromCharCode(b) : `%${HEX[b >> 4]}${HEX[b & 15]}`;
  return out;
}
