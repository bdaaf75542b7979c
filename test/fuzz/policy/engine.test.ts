/**
 * Property: whatever JSON-ish value a client gets into the policy input —
 * any string (lone surrogates included), integers far beyond 2^64, odd
 * doubles, deep nesting within the body limit, keys like `__proto__` — the
 * engine evaluates it (echoing it back never fails), a policy that then
 * fails on it throws a typed PolicyError and nothing else;
 * no string the policy hands back holds a lone surrogate (OPA would have
 * seen U+FFFD); and a normal evaluation right after is still right (issue 9).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import { PolicyError } from '../../../src/errors.ts';
import { readBundle } from '../../../src/policy/bundle.ts';
import { loadPolicyEngine, type WasmPolicyEngine } from '../../../src/policy/wasm.ts';
import { MAX_JSON_DEPTH } from '../../../src/input/json.ts';
import { buildBundle, repoRoot } from '../../helpers/opa.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const NOW = 1670006453141828752n;

let engine: WasmPolicyEngine;

before(async () => {
  const path = await buildBundle({
    files: { 'policy.rego': readFileSync(join(repoRoot, 'test/fixtures/policy/aborts/policy.rego'), 'utf8'), 'data.json': '{"users":["alice"]}' },
    entrypoints: ['aborts/allow', 'aborts/conflict', 'aborts/object_conflict', 'aborts/echo'],
  });
  engine = await loadPolicyEngine(await readBundle(path), { maxMemoryBytes: 64 * 1024 * 1024 });
});

const surrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((u) => String.fromCharCode(u));
// Strings mixing lone surrogates, valid pairs, escapes' raw material and anything else.
const nastyString = fc
  .array(fc.oneof(surrogate, fc.string({ unit: 'binary', maxLength: 4 }), fc.constantFrom('\\', '"', '\\ud800', '\u0000', '\ud83d\ude00', '\ufffd')), { maxLength: 8 })
  .map((parts) => parts.join(''));
const number = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.bigInt({ min: -(2n ** 200n), max: 2n ** 200n }),
  fc.constantFrom(2 ** 53, -(2 ** 53) - 1, 1e308, 5e-324, -0),
);
const leaf = fc.oneof(nastyString, number, fc.boolean(), fc.constant(null));
const value = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, fc.array(tie('v'), { maxLength: 4 }), fc.dictionary(fc.oneof(nastyString, fc.constant('__proto__')), tie('v'), { maxKeys: 4 })),
})).v;
// Deep nesting up to the body parser's limit (deeper bodies never reach the policy).
const nested = fc.tuple(value, fc.integer({ min: 0, max: MAX_JSON_DEPTH }), fc.boolean()).map(([v, depth, asObject]) => {
  let out: unknown = v;
  for (let i = 0; i < depth; i++) out = asObject ? { k: out } : [out];
  return out;
});
const input = fc.oneof(value, nested);

const LONE = /\p{Cs}/u;

function assertNoLoneSurrogate(v: unknown): void {
  if (typeof v === 'string') assert.ok(!LONE.test(v), `lone surrogate in ${JSON.stringify(v)}`);
  else if (Array.isArray(v)) v.forEach(assertNoLoneSurrogate);
  else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) (assertNoLoneSurrogate(k), assertNoLoneSurrogate(x));
}

/** Run `fn`; it may answer or throw a PolicyError, nothing else. */
function answerOrPolicyError(fn: () => unknown): unknown {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    return undefined;
  }
}

function assertNormalDecisions(): void {
  assert.equal(engine.evaluate('aborts/allow', { user: 'alice', n: 1 }, NOW).decision.allow, true);
  assert.equal(engine.evaluate('aborts/allow', { user: 'alice', n: 500 }, NOW).decision.allow, false);
}

describe('fuzz: the policy engine under arbitrary input values', () => {
  it('any value within the limits is evaluated (no error), hands back no lone surrogate, and the engine stays right', () => {
    fc.assert(
      fc.property(input, (v) => {
        // Any value within the input limits is something the policy can be given: no error at all.
        const echoed = engine.evaluateRaw('aborts/echo', { v }, NOW);
        assert.equal(echoed.length, 1);
        assertNoLoneSurrogate(echoed);
        answerOrPolicyError(() => engine.evaluate('aborts/allow', { user: v, n: v }, NOW));
        assertNormalDecisions();
      }),
      { numRuns: RUNS },
    );
  });

  it('conflicts over arbitrary values fail as PolicyError every time, and the engine stays right', () => {
    fc.assert(
      fc.property(fc.array(input, { minLength: 2, maxLength: 4 }), (values) => {
        answerOrPolicyError(() => engine.evaluate('aborts/conflict', { values }, NOW));
        answerOrPolicyError(() => engine.evaluate('aborts/object_conflict', { values }, NOW));
        assertNormalDecisions();
      }),
      { numRuns: RUNS },
    );
  });
});
