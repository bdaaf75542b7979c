/**
 * The policy engine after failed evaluations (issue 9): whatever way an
 * evaluation aborts inside the wasm module, the next one runs on exactly the
 * state the bundle was loaded into. Before the fix every abort leaked its
 * frames of the module's 64 KiB C stack, and after a few hundred aborts every
 * evaluation trapped with "memory access out of bounds".
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { PolicyError } from '../../../src/errors.ts';
import { readBundle, type Bundle } from '../../../src/policy/bundle.ts';
import { hostBuiltins, type HostBuiltin } from '../../../src/policy/builtins/index.ts';
import { loadPolicyEngine, type EngineReset, type PolicyEngineOptions, type WasmPolicyEngine } from '../../../src/policy/wasm.ts';
import { buildBundle, repoRoot } from '../../helpers/opa.ts';

const NOW = 1670006453141828752n;
const ENTRYPOINTS = ['aborts/allow', 'aborts/conflict', 'aborts/object_conflict', 'aborts/function_conflict', 'aborts/weekday', 'aborts/range_len', 'aborts/echo'];
const CEILING = 4 * 1024 * 1024;

let bundle: Bundle;

before(async () => {
  const dir = join(repoRoot, 'test/fixtures/policy/aborts');
  const path = await buildBundle({
    files: { 'policy.rego': readFileSync(join(dir, 'policy.rego'), 'utf8'), 'data.json': JSON.stringify({ users: ['alice', 'carol'], filler: 'x'.repeat(10_000) }) },
    entrypoints: ENTRYPOINTS,
  });
  bundle = await readBundle(path);
});

/** The engine under test: time.weekday throws for n = -1 (a host builtin error), the memory ceiling is small. */
function load(options: PolicyEngineOptions = {}): Promise<WasmPolicyEngine> {
  const real = hostBuiltins();
  const weekday = real['time.weekday'] as HostBuiltin;
  return loadPolicyEngine(bundle, {
    maxMemoryBytes: CEILING,
    builtins: {
      ...real,
      'time.weekday': (ctx, n) => {
        if (n === -1) throw new Error('weekday: boom');
        return weekday(ctx, n);
      },
    },
    ...options,
  });
}

/** Every way an evaluation aborts inside the module, with the message it fails with. */
const ABORTS: readonly { readonly kind: string; readonly run: (e: WasmPolicyEngine) => unknown; readonly message: RegExp }[] = [
  { kind: 'rule conflict', run: (e) => e.evaluate('aborts/conflict', { values: [1, 2] }, NOW), message: /var assignment conflict/ },
  { kind: 'object key conflict', run: (e) => e.evaluate('aborts/object_conflict', { values: [1, 2] }, NOW), message: /object insert conflict/ },
  { kind: 'function conflict', run: (e) => e.evaluate('aborts/function_conflict', { n: 1 }, NOW), message: /var assignment conflict/ },
  { kind: 'input text the module cannot parse', run: (e) => e.evaluateText('aborts/allow', '{"user":"\\ud800"}', NOW), message: /illegal string escape/ },
  { kind: 'input text with a lone low surrogate', run: (e) => e.evaluateText('aborts/echo', '{"user":["alice","\\udfff"]}', NOW), message: /illegal string escape/ },
  { kind: 'host builtin error', run: (e) => e.evaluate('aborts/weekday', { n: -1 }, NOW), message: /weekday: boom/ },
];

const MEMORY_CAP = { kind: 'memory ceiling', run: (e: WasmPolicyEngine) => e.evaluate('aborts/range_len', { n: 10_000_000 }, NOW), message: /opa_malloc/ };

function assertAborts(engine: WasmPolicyEngine, abort: { kind: string; run: (e: WasmPolicyEngine) => unknown; message: RegExp }): void {
  assert.throws(
    () => abort.run(engine),
    (err: unknown) => err instanceof PolicyError && err.reason === 'policy_eval_error' && abort.message.test(err.message),
    abort.kind,
  );
}

/** A normal decision whose answer the caller knows: allowed for alice/carol with n < 100. */
function assertDecision(engine: WasmPolicyEngine, i: number): void {
  const user = ['alice', 'bob', 'carol'][i % 3]!;
  const n = i % 200;
  const expected = user !== 'bob' && n < 100;
  const { decision } = engine.evaluate('aborts/allow', { user, n, request: { path: `/v1/items/${i}` } }, NOW);
  if (decision.allow !== expected) assert.fail(`evaluation ${i} (${user}, ${n}): allow ${decision.allow}, expected ${expected}`);
}

describe('engine state after failed evaluations', () => {
  it('every kind of abort leaves the stack pointer and the loaded data exactly as loaded', async () => {
    const engine = await load();
    const rest = engine.restState();
    // The module defines one mutable global, the C stack pointer, at the top of its 64 KiB stack.
    assert.deepEqual(rest.globals, [65536]);
    for (const abort of [...ABORTS, MEMORY_CAP]) {
      for (let i = 0; i < 3; i++) assertAborts(engine, abort);
      const now = engine.restState();
      assert.deepEqual(now.globals, rest.globals, abort.kind);
      assert.ok(Buffer.from(now.data).equals(Buffer.from(rest.data)), `${abort.kind}: the data region changed`);
      assertDecision(engine, 0);
      assertDecision(engine, 1);
    }
  });

  it('stays right over 100,000 aborted evaluations of every kind, interleaved with normal ones', async () => {
    const resets: EngineReset[] = [];
    const engine = await load({ onReset: (e) => resets.push(e) });
    const rest = engine.restState();
    const ROUNDS = 17_000; // × 6 kinds = 102,000 aborts
    const CAP_EVERY = 500; // the memory ceiling is slow to reach (it allocates 4 MiB): 34 times
    let aborted = 0;
    for (let i = 0; i < ROUNDS; i++) {
      for (const abort of ABORTS) {
        try {
          abort.run(engine);
          assert.fail(`${abort.kind} did not fail`);
        } catch (err) {
          if (!(err instanceof PolicyError) || err.reason !== 'policy_eval_error') throw err;
          aborted++;
        }
        assertDecision(engine, aborted);
      }
      if (i % CAP_EVERY === 0) {
        assertAborts(engine, MEMORY_CAP);
        assertDecision(engine, i);
      }
    }
    assert.ok(aborted >= 100_000);
    const now = engine.restState();
    assert.deepEqual(now.globals, rest.globals);
    assert.ok(Buffer.from(now.data).equals(Buffer.from(rest.data)), 'the data region changed');
    // Only the memory-ceiling failures grew the memory, so only they rebuilt the instance; each gave the memory back.
    const capHits = Math.ceil(ROUNDS / CAP_EVERY);
    assert.equal(engine.resets, capHits);
    assert.equal(resets.length, capHits);
    for (const r of resets) {
      assert.match(r.error, /opa_malloc/);
      assert.ok(r.memoryBytesBefore > r.memoryBytesAfter, `${r.memoryBytesBefore} → ${r.memoryBytesAfter}`);
    }
    assert.ok(engine.memoryBytes < CEILING / 2, `memory ${engine.memoryBytes} bytes`);
  });

  it('a rebuilt instance decides as the first one, and can be rebuilt again', async () => {
    const engine = await load();
    for (let i = 0; i < 5; i++) {
      assertAborts(engine, MEMORY_CAP);
      assert.equal(engine.resets, i + 1);
      for (const abort of ABORTS) assertAborts(engine, abort);
      for (let j = 0; j < 6; j++) assertDecision(engine, j);
      assert.deepEqual(engine.evaluateRaw('aborts/range_len', { n: 1000 }, NOW), [{ result: 1000 }]);
    }
    assert.deepEqual(engine.evaluateRaw('aborts/weekday', { n: 0 }, NOW), [{ result: 'Thursday' }]);
  });

  it('memory grown by a successful evaluation is kept: later failures are repaired in place, without a rebuild', async () => {
    const engine = await load();
    const before = engine.memoryBytes;
    assert.deepEqual(engine.evaluateRaw('aborts/range_len', { n: 10_000 }, NOW), [{ result: 10_000 }]);
    const grown = engine.memoryBytes;
    assert.ok(grown > before);
    for (let i = 0; i < 2000; i++) assertAborts(engine, ABORTS[i % ABORTS.length]!);
    assert.equal(engine.resets, 0);
    assert.equal(engine.memoryBytes, grown);
    // The grown memory is usable as before: the same big evaluation needs no more.
    assert.deepEqual(engine.evaluateRaw('aborts/range_len', { n: 10_000 }, NOW), [{ result: 10_000 }]);
    assert.equal(engine.memoryBytes, grown);
    assertDecision(engine, 0);
  });

  it('input nested too deep to serialize is a typed policy error, and the engine goes on', async () => {
    const engine = await load();
    let deep: unknown = 1;
    for (let i = 0; i < 200_000; i++) deep = [deep];
    assert.throws(
      () => engine.evaluate('aborts/echo', { deep }, NOW),
      (err: unknown) => err instanceof PolicyError && err.reason === 'policy_eval_error',
    );
    assertDecision(engine, 0);
    assertDecision(engine, 1);
  });
});
