/**
 * Differential test of every builtin regate supplies to the wasm module
 * (host builtins and the SDK's remaining JS builtins): one small Rego rule
 * per builtin, `result := f(input.args[0], ...)`, compiled once with
 * `opa build -t wasm`, evaluated by regate's engine and by the pinned
 * `opa run` on generated arguments — valid ones, wrong types, unicode,
 * number spellings and boundaries, zones and DST edges.
 * `REGATE_DIFF_CASES=<n>` runs n cases per builtin (the long mode).
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hostBuiltins, sdkBuiltinNames } from '../../src/policy/builtins/index.ts';
import { readBundle } from '../../src/policy/bundle.ts';
import { loadPolicyEngine, type WasmPolicyEngine } from '../../src/policy/wasm.ts';
import { buildBundle } from '../helpers/opa.ts';
import { caseCount, emptyReport, runDifferential, summarize, type Case, type KnownDifference } from './compare.ts';
import { anyValue, EDGE_NUMBERS, EDGE_TIMES_NS, pick, rng, UNICODE_STRINGS, ZONES, type Rand } from './generate.ts';
import { startOpaServer, type OpaServer } from './opa-server.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CASES = caseCount(300);
const NOW_NS = 1795455000123456789n;
const VOCAB = ['alice', 'key', 'secret', 'a,b,c', '2026-11-23T17:30:00Z', '1h30m', 'x'];

const raw = (t: string): unknown => (JSON as unknown as { rawJSON(t: string): unknown }).rawJSON(t);

/** Sometimes the right type, sometimes anything. */
function or(r: Rand, good: () => unknown, badRate = 0.15): unknown {
  return r() < badRate ? anyValue(r, VOCAB, 1) : good();
}

const str = (r: Rand): string => (r() < 0.5 ? pick(r, VOCAB) : pick(r, UNICODE_STRINGS));

// --- sprintf formats: literal text and verbs with flags, width, precision, indexes ---
const FLAGS = ['', '', '', '+', '-', '#', ' ', '0', '-0', '+0', '# '];
const VERBS = 'vvvvsssdddxXobcqUeEfFgGTtp%!'.split('');
function verb(r: Rand): string {
  let s = '%' + pick(r, FLAGS);
  const k = r();
  if (k < 0.2) s += String(Math.floor(r() * 12));
  else if (k < 0.25) s += '*';
  if (r() < 0.25) s += '.' + (r() < 0.8 ? String(Math.floor(r() * 8)) : '*');
  if (r() < 0.07) s = `%[${Math.floor(r() * 4)}]`;
  return s + pick(r, VERBS);
}
function format(r: Rand): string {
  const parts: string[] = [];
  for (let n = 1 + Math.floor(r() * 3); n > 0; n--) parts.push(r() < 0.3 ? pick(r, ['a ', ': ', '日本 ', '']) : verb(r));
  if (r() < 0.03) parts.push('%');
  return parts.join('');
}
const sprintfArg = (r: Rand): unknown => (r() < 0.5 ? pick(r, EDGE_NUMBERS) : anyValue(r, VOCAB, 2));

// --- time arguments ---
const ns = (r: Rand): unknown => (r() < 0.6 ? pick(r, EDGE_TIMES_NS) : raw(String(BigInt(Math.floor((r() - 0.2) * 4e9)) * 1_000_000_000n + BigInt(Math.floor(r() * 1e9)))));
const timeArg = (r: Rand): unknown => (r() < 0.5 ? ns(r) : r() < 0.9 ? [ns(r), pick(r, ZONES)] : pick(r, EDGE_NUMBERS));
const LAYOUTS = ['2006-01-02T15:04:05Z07:00', '2006-01-02', 'Mon Jan _2 15:04:05 MST 2006', '15:04:05.000', 'RFC3339', 'RFC1123', 'Kitchen', '02 Jan 06 15:04 -0700', 'Monday'];
const TIME_TEXTS = ['2026-11-23T17:30:00Z', '2026-11-23T17:30:00.123456789+05:30', '2006-01-02', '2025-03-09T02:30:00-08:00', '9999-12-31T23:59:59Z', '0000-01-01T00:00:00Z', 'Mon Jan  2 15:04:05 MST 2006', 'bad', ''];
const DURATIONS = ['1h30m', '1.5h', '-2m', '0', '', '1d', '3w', '300ms', '1us', '1µs', '9223372036854775807ns', '9223372036854775808ns', '1e3s', '.5s', '1h1'];

// --- JSON / YAML / regex texts ---
const JSON_TEXTS = ['{"a":1}', '[1,2', '1e400', '"\\ud800"', ' 1 ', '\ufeff1', 'NaN', '01', '-0', '1.', '.5', 'true', 'nul', '{"a":1,"a":2}', '', '"\t"', '[1,]', '{"a" : [null, {"b": "\\u00e9"}]}'];
const YAML_TEXTS = ['a: 1', 'a: [1, 2]', '- x\n- y', 'foo', '{', 'a: 1\na: 2', 'yes', 'on', '1e3', '0x10', '~', '"\\u00e9"', 'a: b: c', '---\na: 1\n---\nb: 2', '', 'a:\n  - 1\n  - {b: null}', '!!binary aGVsbG8=', '2026-11-23'];
const PATTERNS = [',', '\\s+', '(,)', '', 'a*', '[', '(?i)a', '\\d', 'x|y', '^', '$', '\\b', '.', '\\pL', '(?P<n>a)', '[[:alpha:]]', 'a(?=b)', '\\z'];
const SPLIT_TEXTS = ['a,b,c', '', 'aXbxc', 'a1b22c', 'abc', ' a  b ', '日本,語', 'aaa'];

/** Builtin name → arity and argument generator. */
const BUILTINS: Record<string, (r: Rand) => unknown[]> = {
  sprintf: (r) => [or(r, () => format(r), 0.05), or(r, () => Array.from({ length: Math.floor(r() * 4) }, () => sprintfArg(r)), 0.05)],
  'crypto.md5': (r) => [or(r, () => str(r))],
  'crypto.sha1': (r) => [or(r, () => str(r))],
  'crypto.sha256': (r) => [or(r, () => str(r))],
  'crypto.hmac.md5': (r) => [or(r, () => str(r)), or(r, () => str(r))],
  'crypto.hmac.sha1': (r) => [or(r, () => str(r)), or(r, () => str(r))],
  'crypto.hmac.sha256': (r) => [or(r, () => str(r)), or(r, () => str(r))],
  'crypto.hmac.sha512': (r) => [or(r, () => str(r)), or(r, () => str(r))],
  'crypto.hmac.equal': (r) => {
    const a = str(r);
    return [or(r, () => a), or(r, () => (r() < 0.5 ? a : str(r)))];
  },
  'hex.encode': (r) => [or(r, () => str(r))],
  'base64url.encode_no_pad': (r) => [or(r, () => str(r))],
  'regex.split': (r) => [or(r, () => pick(r, PATTERNS)), or(r, () => pick(r, SPLIT_TEXTS))],
  'yaml.is_valid': (r) => [or(r, () => pick(r, YAML_TEXTS))],
  'yaml.unmarshal': (r) => [or(r, () => pick(r, YAML_TEXTS))],
  'yaml.marshal': (r) => [anyValue(r, VOCAB, 2)],
  'time.parse_ns': (r) => [or(r, () => pick(r, LAYOUTS)), or(r, () => pick(r, TIME_TEXTS))],
  'time.parse_rfc3339_ns': (r) => [or(r, () => pick(r, TIME_TEXTS))],
  'time.parse_duration_ns': (r) => [or(r, () => pick(r, DURATIONS))],
  'time.date': (r) => [timeArg(r)],
  'time.clock': (r) => [timeArg(r)],
  'time.weekday': (r) => [timeArg(r)],
  'time.add_date': (r) => [timeArg(r), or(r, () => Math.floor((r() - 0.5) * 20)), or(r, () => Math.floor((r() - 0.5) * 30)), or(r, () => Math.floor((r() - 0.5) * 400))],
  'time.diff': (r) => [timeArg(r), timeArg(r)],
  'time.format': (r) => [r() < 0.7 ? timeArg(r) : [ns(r), pick(r, ZONES), pick(r, LAYOUTS)]],
};

/**
 * Supplied but not compared: time.now_ns differs by design (OPA reads its own
 * clock); json.is_valid is compiled natively into the wasm module by opa 1.22
 * (the SDK's JS version is never called), so it is not regate's to supply.
 */
const NOT_COMPARED = new Set(['time.now_ns', 'json.is_valid']);

/** An instant at least 2^31 s from the epoch (ns), where zone data comes from rules, not transitions. */
const FAR_INSTANT = (text: string): boolean => [...text.matchAll(/-?\d{19,}/g)].some((m) => { const n = BigInt(m[0]); return n >= 2147483648000000000n || n <= -2147483648000000000n; });

/** A zone abbreviation in formatted time: `EST`, `AEST`, `-05`, `+0530`. */
const ABBREVIATION = /\b[A-Z][A-Za-z]{1,4}\b|[+-]\d{2}(?:\d{2})?\b/g;

/** The README's "Known differences from OPA", as predicates over a mismatch. */
const KNOWN: readonly KnownDifference[] = [
  { id: 'add-date-overflow', applies: (d) => d.entrypoint === 'diff/b_time_add_date' && d.regate.includes('time outside of valid range') && !d.opa.startsWith('error') },
  { id: 'tz-far-future-abbreviation', applies: (d) => d.entrypoint.startsWith('diff/b_time_') && FAR_INSTANT(d.input) },
  {
    // Same text but for a zone abbreviation (`NWT` vs `NDT` in 1944, `+10` vs `AEST` in 1970).
    id: 'historical-zone-abbreviation',
    applies: (d) => d.entrypoint === 'diff/b_time_format' && !d.opa.startsWith('error') && d.regate.replace(ABBREVIATION, '?') === d.opa.replace(ABBREVIATION, '?'),
  },
  {
    // `%p` of a *big.Int prints a Go pointer (`0xc000123456`): never reproducible.
    id: 'sprintf-pointer',
    applies: (d) => d.entrypoint === 'diff/b_sprintf' && /%[-+# 0-9.*]*p/.test(d.input),
  },
  { id: 'regex-split-js-regexp', applies: (d) => d.entrypoint === 'diff/b_regex_split' },
  { id: 'yaml-js-library', applies: (d) => d.entrypoint.startsWith('diff/b_yaml_') },
];

const ruleName = (name: string): string => `b_${name.replaceAll('.', '_')}`;

describe('differential: builtins, regate vs opa', { concurrency: 1 }, () => {
  let engine: WasmPolicyEngine;
  let opa: OpaServer;
  let dir: string;

  before(async () => {
    const lines = ['package diff', ''];
    for (const [name, gen] of Object.entries(BUILTINS)) {
      const arity = gen(rng(1)).length;
      lines.push(`${ruleName(name)} := ${name}(${Array.from({ length: arity }, (_, i) => `input.args[${i}]`).join(', ')})`);
    }
    const source = `${lines.join('\n')}\n`;
    dir = mkdtempSync(join(tmpdir(), 'regate-diff-builtins-'));
    writeFileSync(join(dir, 'diff.rego'), source);
    const entrypoints = Object.keys(BUILTINS).map((n) => `diff/${ruleName(n)}`);
    // One instance for every builtin: each failed evaluation (thousands of
    // builtin errors) must leave it as good as new for the next.
    engine = await loadPolicyEngine(await readBundle(await buildBundle({ files: { 'diff.rego': source }, entrypoints })));
    opa = await startOpaServer([join(dir, 'diff.rego')]);
  });
  after(async () => {
    await opa?.stop();
  });

  it('covers every builtin regate supplies', () => {
    const supplied = new Set([...Object.keys(hostBuiltins()), ...sdkBuiltinNames()]);
    const covered = new Set([...Object.keys(BUILTINS), ...NOT_COMPARED]);
    assert.deepEqual([...supplied].filter((n) => !covered.has(n)).sort(), []);
    assert.deepEqual(engine.unsupportedBuiltins, []);
  });

  for (const [index, [name, gen]] of Object.entries(BUILTINS).entries()) {
    it(`${name}: 0 semantic mismatches over ${CASES} cases`, async () => {
      const r = rng(5000 + index);
      const cases: Case[] = [];
      for (let i = 0; i < CASES; i++) {
        const input = { args: gen(r) };
        cases.push({ label: `#${i}`, input, text: JSON.stringify(input) });
      }
      const report = await runDifferential(engine, opa, `diff/${ruleName(name)}`, cases, NOW_NS, emptyReport(), KNOWN);
      const text = summarize(name, report, 6);
      console.log(text.split('\n')[0]);
      if (report.mismatches.length + report.orderingOnly.length > 0) console.log(text);
      assert.equal(report.mismatches.length, 0, text);
    });
  }
});
