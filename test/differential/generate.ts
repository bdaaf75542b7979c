/**
 * Seeded generators for the differential test: realistic policy inputs in
 * the documented shape (README "Policy input", src/input/build.ts), and the
 * mutations that find disagreements — wrong types, unicode (including lone
 * surrogates), number boundaries and spellings (`1.0`, `1e2`, `1e400`),
 * DST edges, and data.json members next to strangers.
 *
 * Everything comes from one PRNG with a fixed seed, so a failing case is
 * reproduced by running the test again; its JSON text is in the report.
 */

import type { Case } from './compare.ts';

/** mulberry32: small, fast, good enough to pick cases. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Rand = () => number;

export function pick<T>(r: Rand, items: readonly T[]): T {
  return items[Math.floor(r() * items.length)] as T;
}

export function subset<T>(r: Rand, items: readonly T[], max = 4): T[] {
  const n = Math.floor(r() * (max + 1));
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(pick(r, items));
  return [...new Set(out)];
}

const JSONX = JSON as unknown as { rawJSON(t: string): unknown; isRawJSON(v: unknown): boolean };
const raw = (text: string): unknown => JSONX.rawJSON(text);

/** Numbers at the edges, several written in the spellings JSON allows (as exact JSON text). */
export const EDGE_NUMBERS: readonly unknown[] = [
  0, -1, 1, 2, 7, 42, 100, 255, 65, 0x10ffff, 0xd800, 1.5, -0.5, 0.1, 3.14159, 2 ** 31, 2 ** 32,
  Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER,
  raw('9007199254740993'), raw('9223372036854775807'), raw('-9223372036854775808'), raw('9223372036854775808'),
  raw('18446744073709551616'), raw('1.0'), raw('-0'), raw('1e2'), raw('1E3'), raw('2.50'), raw('1e400'), raw('-1e400'),
  raw('1e-400'), raw('-1e-400'), raw('0.000001'), raw('1234567.0'), raw('1e21'), raw('1e20'), raw('123456789012345678901234567890'),
  raw('1795455000.123456789'), raw('1795455000123456789'), raw('1872268980.4618656091'), 1e-7, 123456.789, -273.15,
];

/** Strings that stress unicode handling: multi-byte, combining, RTL, NUL, escapes and lone surrogates. */
export const UNICODE_STRINGS: readonly string[] = [
  '', ' ', 'a', 'Ab', 'ümlaut', 'naïve', 'e\u0301', '日本語', '🦀', '👩‍👩‍👧', '\u202eevil', '\u0000', 'tab\there', 'line\nbreak',
  '"quoted"', 'back\\slash', '\u00ff\u0100', '\ufeff', '\u2028', 'x'.repeat(300), '%s %d %v', '%!', '\ud800', 'a\udc00b', '\udbff\udfff',
];

/** Instants (ns) near DST transitions and range edges. */
export const EDGE_TIMES_NS: readonly unknown[] = [
  raw('1741510800000000000'), // 2025-03-09T09:00:00Z, US DST start day
  raw('1762074000000000000'), // 2025-11-02T09:00:00Z, US DST end hour
  raw('1743296400000000000'), // 2025-03-30T01:00:00Z, EU DST start
  raw('1761440400000000000'), // 2025-10-26T01:00:00Z, EU DST end
  raw('1795455000123456789'), 0, -1, raw('-9223372036854775808'), raw('9223372036854775807'), raw('253402300799000000000'),
  raw('1711846800000000000'), // 2024-03-31T01:00:00Z
];

export const ZONES: readonly string[] = [
  'UTC', '', 'Local', 'America/Los_Angeles', 'America/New_York', 'Europe/Berlin', 'Europe/London', 'Asia/Kolkata', 'Australia/Lord_Howe',
  'Pacific/Chatham', 'Asia/Kathmandu', 'America/St_Johns', 'Etc/GMT+5', 'Factory', 'Mars/Olympus', 'america/los_angeles', 'EST5EDT',
];

/** Any JSON value, from the vocabulary and the edges; depth-bounded. */
export function anyValue(r: Rand, vocab: readonly string[], depth = 2): unknown {
  const k = r();
  if (k < 0.25) return pick(r, vocab);
  if (k < 0.35) return pick(r, UNICODE_STRINGS);
  if (k < 0.5) return pick(r, EDGE_NUMBERS);
  if (k < 0.58) return pick(r, [true, false, null]);
  if (depth <= 0) return pick(r, vocab);
  if (k < 0.8) return Array.from({ length: Math.floor(r() * 4) }, () => anyValue(r, vocab, depth - 1));
  const o: Record<string, unknown> = {};
  for (let i = Math.floor(r() * 4); i > 0; i--) o[pick(r, vocab)] = anyValue(r, vocab, depth - 1);
  return o;
}

/** A wrong-typed or hostile replacement for one value. */
function mutant(r: Rand, vocab: readonly string[]): unknown {
  return anyValue(r, vocab, 1);
}

/** Replace one value somewhere in `v` (in place) by a mutant. */
function mutate(r: Rand, v: Record<string, unknown>, vocab: readonly string[]): void {
  let node: Record<string, unknown> | unknown[] = v;
  for (let depth = 0; depth < 4; depth++) {
    const keys = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
    if (keys.length === 0) break;
    const key = pick(r, keys as (string | number)[]);
    const child = (node as Record<string | number, unknown>)[key];
    if (child !== null && typeof child === 'object' && !JSONX.isRawJSON(child) && r() < 0.6) {
      node = child as Record<string, unknown>;
      continue;
    }
    (node as Record<string | number, unknown>)[key] = r() < 0.15 ? undefined : mutant(r, vocab);
    return;
  }
  if (!Array.isArray(node)) node[pick(r, vocab)] = mutant(r, vocab);
}

/** What a generator knows about one example: its routes and the strings its policy and data mention. */
export interface PolicyShape {
  readonly routes: readonly { readonly id: string; readonly methods: readonly string[]; readonly params: readonly string[]; readonly attributes: unknown }[];
  readonly vocab: readonly string[];
}

/** Path parameter names in a route template: `/v1/{tenant}/x/{id}` → tenant, id. */
export function templateParams(path: string): string[] {
  return [...path.matchAll(/\{([^}]+)\}/g)].map((m) => (m[1] as string).replace(/\*$/, ''));
}

/** Every string (keys and values) in a JSON-like value. */
export function stringsIn(v: unknown, out = new Set<string>()): Set<string> {
  if (typeof v === 'string') out.add(v);
  else if (Array.isArray(v)) for (const x of v) stringsIn(x, out);
  else if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      out.add(k);
      stringsIn(x, out);
    }
  }
  return out;
}

/** String literals in Rego source (plain double-quoted ones). */
export function regoStrings(source: string): string[] {
  return [...source.matchAll(/"((?:[^"\\\n]|\\.)*)"/g)].map((m) => {
    try {
      return JSON.parse(`"${m[1]}"`) as string;
    } catch {
      return m[1] as string;
    }
  });
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];
const NOW_S = 1795455000; // 2026-11-23T17:30:00Z, the README's instant

/** One realistic input for `shape`, mutated with probability `mutationRate`. */
export function policyInput(r: Rand, shape: PolicyShape, mutationRate: number): Record<string, unknown> {
  const route = pick(r, shape.routes);
  const v = shape.vocab;
  const params: Record<string, unknown> = {};
  for (const p of route.params) params[p] = r() < 0.9 ? pick(r, v) : pick(r, UNICODE_STRINGS);
  const nowS = NOW_S + Math.floor((r() - 0.5) * 86400 * 14);
  const nowNs = BigInt(nowS) * 1_000_000_000n + BigInt(Math.floor(r() * 1e9));
  const sub = pick(r, v);
  const exp = nowS + Math.floor((r() - 0.3) * 7200);
  const token: Record<string, unknown> = { sub, iss: pick(r, v), aud: pick(r, v), exp, iat: exp - 3600, scope: subset(r, v).join(' ') };
  for (const k of subset(r, v, 3)) token[k] = anyValue(r, v, 2);
  if (r() < 0.3) {
    token.authorization_details = Array.from({ length: 1 + Math.floor(r() * 3) }, () => {
      const d: Record<string, unknown> = { type: pick(r, v) };
      for (const k of subset(r, v, 4)) d[k] = r() < 0.5 ? subset(r, v) : r() < 0.5 ? pick(r, v) : anyValue(r, v, 1);
      if (r() < 0.5) d.expires_at = r() < 0.5 ? exp : pick(r, EDGE_NUMBERS);
      return d;
    });
  }
  const local = new Date(nowS * 1000);
  const input: Record<string, unknown> = {
    request: {
      id: `req-${Math.floor(r() * 1e9)}`,
      method: r() < 0.85 ? pick(r, route.methods) : pick(r, METHODS),
      path: `/${Object.values(params).join('/')}`,
      params,
      query: r() < 0.3 ? { [pick(r, v)]: subset(r, v, 2) } : {},
      headers: { 'content-type': 'application/json', ...(r() < 0.3 ? { [pick(r, v).toLowerCase()]: pick(r, v) } : {}) },
      host: 'api.example.com',
      remote_addr: pick(r, ['10.0.0.7', '127.0.0.1', '::1', '192.168.1.20']),
      ...(r() < 0.4 ? { body: anyValue(r, v, 3) } : {}),
    },
    route: { id: route.id, attributes: JSON.parse(JSON.stringify(route.attributes)) as unknown },
    subject: {
      authenticated: r() < 0.9,
      sub,
      iss: token.iss,
      roles: subset(r, v),
      groups: subset(r, v),
      scopes: subset(r, v),
      tenant: r() < 0.8 ? pick(r, v) : '',
    },
    token,
    time: {
      now_ns: raw(nowNs.toString()),
      rfc3339: local.toISOString(),
      timezone: pick(r, [...ZONES.slice(3, 6), pick(r, v)]),
      local: {
        date: local.toISOString().slice(0, 10),
        clock: local.toISOString().slice(11, 19),
        year: local.getUTCFullYear(),
        month: local.getUTCMonth() + 1,
        day: local.getUTCDate(),
        hour: local.getUTCHours(),
        minute: local.getUTCMinutes(),
        second: local.getUTCSeconds(),
        weekday: pick(r, ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday']),
        offset: pick(r, ['-08:00', '-07:00', '+00:00', '+01:00', '+05:30']),
      },
    },
  };
  if (r() < 0.4) input.resource = { tags: subset(r, v), ...(r() < 0.3 ? { [pick(r, v)]: anyValue(r, v, 2) } : {}) };
  for (let i = 0; r() < mutationRate && i < 3; i++) mutate(r, input, v);
  return input;
}

/** `n` cases for `shape` from `seed`: a quarter unmutated, the rest with one or more mutations. */
export function policyCases(shape: PolicyShape, n: number, seed: number): Case[] {
  const r = rng(seed);
  const cases: Case[] = [];
  for (let i = 0; i < n; i++) {
    const input = policyInput(r, shape, i % 4 === 0 ? 0 : 0.7);
    cases.push({ label: `#${i}`, input, text: JSON.stringify(input) });
  }
  return cases;
}
