import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { ConfigError, PolicyError } from '../../../src/errors.ts';
import { parseBundle, readBundle, type Bundle } from '../../../src/policy/bundle.ts';
import { hostBuiltins, REPLACED_SDK_BUILTINS, sdkBuiltinNames, type EvalContext, type HostBuiltin } from '../../../src/policy/builtins/index.ts';
import { loadPolicyEngine, type WasmPolicyEngine } from '../../../src/policy/wasm.ts';
import { buildBundle, opaBin, repoRoot } from '../../helpers/opa.ts';

const execFileP = promisify(execFile);

const NOW = 1670006453141828752n; // 2022-12-02T18:40:53.141828752Z, not representable as a double
const BASIC_ENTRYPOINTS = [
  'fixtures/allow_bool',
  'fixtures/decision',
  'fixtures/echo',
  'fixtures/conflict',
  'fixtures/now',
  'fixtures/now_plus_one',
  'fixtures/big_plus_one',
  'fixtures/weekday',
  'fixtures/range_len',
  'fixtures/greeting',
  'fixtures/formatted',
  'fixtures/digest',
  'fixtures/data_view',
];

function assertPolicyError(fn: () => unknown, reason: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PolicyError, `expected PolicyError, got ${String(err)}`);
    assert.equal(err.reason, reason);
    if (message) assert.match(err.message, message);
    return true;
  });
}

let basicBundle: Bundle;
let unsupportedBundle: Bundle;

before(async () => {
  const [basic, unsupported] = await Promise.all([
    buildBundle({ dir: join(repoRoot, 'test/fixtures/policy/basic'), entrypoints: BASIC_ENTRYPOINTS, args: ['--revision', 'r1'] }),
    buildBundle({ dir: join(repoRoot, 'test/fixtures/policy/unsupported'), entrypoints: ['unsupported/fetched', 'unsupported/id', 'unsupported/ok'] }),
  ]);
  basicBundle = await readBundle(basic);
  unsupportedBundle = await readBundle(unsupported);
});

describe('loadPolicyEngine', () => {
  it('exposes revision, entrypoints and the builtins the module needs', async () => {
    const engine = await loadPolicyEngine(basicBundle);
    assert.equal(engine.revision, 'r1');
    assert.deepEqual(engine.entrypoints, [...BASIC_ENTRYPOINTS].sort());
    assert.deepEqual(engine.unsupportedBuiltins, []);
    for (const name of ['time.now_ns', 'time.weekday', 'sprintf', 'crypto.sha256']) assert.ok(engine.requiredBuiltins.includes(name), name);
  });

  it('lists builtins that neither the SDK nor regate implement', async () => {
    const engine = await loadPolicyEngine(unsupportedBundle);
    assert.deepEqual(engine.unsupportedBuiltins, ['http.send', 'uuid.rfc4122']);
    // The rest of the policy still runs; reaching the missing builtin is an eval error.
    assert.deepEqual(engine.evaluateRaw('unsupported/ok', {}, NOW), [{ result: true }]);
    assertPolicyError(() => engine.evaluate('unsupported/fetched', {}, NOW), 'policy_eval_error', /not implemented: built-in function \d+: http\.send/);
  });

  it('counts caller-supplied host builtins as supported', async () => {
    const engine = await loadPolicyEngine(unsupportedBundle, { builtins: { ...hostBuiltins(), 'uuid.rfc4122': () => '00000000-0000-4000-8000-000000000000' } });
    assert.deepEqual(engine.unsupportedBuiltins, ['http.send']);
    assert.deepEqual(engine.evaluateRaw('unsupported/id', {}, NOW), [{ result: '00000000-0000-4000-8000-000000000000' }]);
  });

  it('refuses a module that does not compile', async () => {
    const broken: Bundle = { ...basicBundle, wasm: basicBundle.wasm.slice(0, 100) };
    await assert.rejects(loadPolicyEngine(broken), (err: unknown) => err instanceof ConfigError && err.keyPath === '/policy.wasm' && /not a valid WebAssembly module/.test(err.message));
  });

  it('refuses data that does not fit under the memory ceiling', async () => {
    const big: Bundle = { ...basicBundle, data: { ...basicBundle.data, filler: 'x'.repeat(4 * 1024 * 1024) } };
    await assert.rejects(loadPolicyEngine(big, { maxMemoryBytes: 2 * 1024 * 1024 }), (err: unknown) => err instanceof ConfigError && /cannot load the bundle data/.test(err.message));
  });
});

describe('WasmPolicyEngine.evaluate', () => {
  let engine: WasmPolicyEngine;
  before(async () => {
    engine = await loadPolicyEngine(basicBundle);
  });

  it('boolean results: allow and deny', () => {
    const allow = engine.evaluate('fixtures/allow_bool', { user: 'alice' }, NOW);
    assert.equal(allow.decision.allow, true);
    assert.equal(allow.decision.raw, true);
    assert.ok(Number.isInteger(allow.evalNs) && allow.evalNs >= 0);
    assert.equal(engine.evaluate('fixtures/allow_bool', { user: 'bob' }, NOW).decision.allow, false);
  });

  it('object results, computed from bundle data', () => {
    const allow = engine.evaluate('fixtures/decision', { user: 'alice' }, NOW).decision;
    assert.deepEqual(allow, {
      allow: true,
      reasons: [],
      headers: { 'X-Team': 'platform' },
      responseHeaders: { 'X-Policy': 'fixtures' },
      raw: { allow: true, headers: { 'X-Team': 'platform' }, response_headers: { 'X-Policy': 'fixtures' } },
    });
    const deny = engine.evaluate('fixtures/decision', { user: 'mallory' }, NOW).decision;
    assert.equal(deny.allow, false);
    assert.equal(deny.status, 404);
    assert.deepEqual(deny.reasons, ['not a member of an allowed team']);
  });

  it('an undefined decision', () => {
    assertPolicyError(() => engine.evaluate('fixtures/echo', {}, NOW), 'policy_undefined');
    assertPolicyError(() => engine.evaluate('fixtures/echo', undefined, NOW), 'policy_undefined');
  });

  describe('invalid result shapes, through the wasm module', () => {
    const shapes: [string, unknown][] = [
      ['number', 1],
      ['string', 'yes'],
      ['array', [true]],
      ['null', null],
      ['object without allow', { reasons: [] }],
      ['non-boolean allow', { allow: 'true' }],
      ['reasons not strings', { allow: false, reasons: [1] }],
      ['status out of range', { allow: false, status: 302 }],
      ['header with CR LF', { allow: true, headers: { 'X-A': 'a\r\nX-B: c' } }],
      ['bad header name', { allow: true, headers: { 'X A': 'a' } }],
      ['non-string response header', { allow: true, response_headers: { 'X-A': true } }],
    ];
    for (const [name, result] of shapes) {
      it(name, () => assertPolicyError(() => engine.evaluate('fixtures/echo', { result }, NOW), 'policy_invalid_result'));
    }
  });

  it('an unknown entrypoint', () => {
    assertPolicyError(() => engine.evaluate('fixtures/nope', {}, NOW), 'policy_unknown_entrypoint', /no entrypoint "fixtures\/nope"/);
    assertPolicyError(() => engine.evaluate('__proto__', {}, NOW), 'policy_unknown_entrypoint');
  });

  it('an evaluation error does not poison the next evaluation', () => {
    assertPolicyError(() => engine.evaluate('fixtures/conflict', { values: [1, 2] }, NOW), 'policy_eval_error', /var assignment conflict/);
    assert.equal(engine.evaluate('fixtures/decision', { user: 'alice' }, NOW).decision.allow, true);
    assert.deepEqual(engine.evaluateRaw('fixtures/conflict', { values: [7] }, NOW), [{ result: 7 }]);
    assert.equal(JSON.parse('1670006453141828752'), 1670006453141828800, 'JSON.parse restored');
  });

  it('SDK and regate builtins', () => {
    assert.deepEqual(engine.evaluateRaw('fixtures/greeting', { user: 'alice' }, NOW), [{ result: 'hello alice' }]);
    assert.deepEqual(engine.evaluateRaw('fixtures/digest', { user: 'alice' }, NOW), [{ result: '2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90' }]);
    // A builtin type error aborts the evaluation, as OPA's --strict-builtin-errors does.
    assertPolicyError(() => engine.evaluateRaw('fixtures/digest', { user: 5 }, NOW), 'policy_eval_error', /crypto\.sha256: operand 1 must be string but got number/);
    assert.deepEqual(engine.evaluateRaw('fixtures/greeting', { user: 'bob' }, NOW), [{ result: 'hello bob' }], 'usable afterwards');
  });
});

describe('exact integers', () => {
  let engine: WasmPolicyEngine;
  const seen: { ctx: EvalContext; args: unknown[] }[] = [];
  const builtins: Record<string, HostBuiltin> = {
    'time.now_ns': (ctx) => ctx.nowNs,
    'time.weekday': (ctx, ...args) => {
      seen.push({ ctx, args });
      return { nested: [ctx.nowNs] }; // a host result with a bigint inside
    },
  };
  before(async () => {
    engine = await loadPolicyEngine(basicBundle, { builtins });
  });

  it('time.now_ns() is exactly nowNs, and arithmetic on it stays exact', () => {
    assert.deepEqual(engine.evaluateRaw('fixtures/now', {}, NOW), [{ result: NOW }]);
    assert.deepEqual(engine.evaluateRaw('fixtures/now_plus_one', {}, NOW), [{ result: NOW + 1n }]);
    assert.deepEqual(engine.evaluateRaw('fixtures/now', {}, 5n), [{ result: 5 }]);
  });

  it('bigint input round-trips exactly, up to and beyond 2^63', () => {
    assert.deepEqual(engine.evaluateRaw('fixtures/big_plus_one', { n: 1670006453141828752n }, NOW), [{ result: 1670006453141828753n }]);
    assert.deepEqual(engine.evaluateRaw('fixtures/big_plus_one', { n: 9223372036854775807n }, NOW), [{ result: 9223372036854775808n }]);
    assert.deepEqual(engine.evaluateRaw('fixtures/big_plus_one', { n: -9007199254740993n }, NOW), [{ result: -9007199254740992n }]);
    assert.deepEqual(engine.evaluateRaw('fixtures/big_plus_one', { n: 41 }, NOW), [{ result: 42 }]);
  });

  it('host builtins get exact bigint arguments and the evaluation context', () => {
    seen.length = 0;
    assert.deepEqual(engine.evaluateRaw('fixtures/weekday', { n: 1670006453141828752n }, 77n), [{ result: { nested: [77] } }]);
    assert.deepEqual(engine.evaluateRaw('fixtures/weekday', { n: 12 }, NOW), [{ result: { nested: [NOW] } }]);
    assert.deepEqual(seen.map((s) => s.args), [[1670006453141828752n], [12]]);
    assert.deepEqual(seen.map((s) => s.ctx.nowNs), [77n, NOW]);
  });

  it("sprintf is regate's (Go fmt) and prints integers beyond 2^53 exactly", async () => {
    const withSprintf = await loadPolicyEngine(basicBundle, { builtins: { ...builtins, sprintf: hostBuiltins().sprintf as HostBuiltin } });
    assert.deepEqual(withSprintf.evaluateRaw('fixtures/formatted', {}, NOW), [{ result: `${NOW} ns` }]);
    assert.deepEqual(withSprintf.evaluateRaw('fixtures/formatted', {}, 42n), [{ result: '42 ns' }]);
    // Without it, sprintf is unsupported: the SDK's JavaScript one is out of the path.
    assert.ok(engine.unsupportedBuiltins.includes('sprintf'));
  });

  it('bundle data keeps its exact integers', () => {
    const [row] = engine.evaluateRaw('fixtures/data_view', {}, NOW) as [{ result: { big: unknown } }];
    assert.equal(row.result.big, 9223372036854775807n);
  });

  it('the decision carries plain numbers', () => {
    const { decision } = engine.evaluate('fixtures/echo', { result: { allow: true, n: 1670006453141828752n } }, NOW);
    assert.deepEqual(decision.raw, { allow: true, n: 1670006453141828752 });
    assert.doesNotThrow(() => JSON.stringify(decision));
  });

  it('a throwing host builtin is an eval error and leaves the engine usable', async () => {
    const failing = await loadPolicyEngine(basicBundle, {
      builtins: {
        ...builtins,
        'time.weekday': () => {
          throw new Error('boom');
        },
      },
    });
    assertPolicyError(() => failing.evaluate('fixtures/weekday', { n: 1 }, NOW), 'policy_eval_error', /boom/);
    assert.equal(failing.evaluate('fixtures/allow_bool', { user: 'alice' }, NOW).decision.allow, true);
  });
});

describe('memory', () => {
  it('a runaway evaluation hits the ceiling and the engine recovers', async () => {
    const ceiling = 8 * 1024 * 1024;
    const engine = await loadPolicyEngine(basicBundle, { maxMemoryBytes: ceiling });
    assertPolicyError(() => engine.evaluate('fixtures/range_len', { n: 10_000_000 }, NOW), 'policy_eval_error', /opa_malloc/);
    assert.ok(engine.memoryBytes <= ceiling);
    assert.deepEqual(engine.evaluateRaw('fixtures/range_len', { n: 1000 }, NOW), [{ result: 1000 }]);
    assert.equal(engine.evaluate('fixtures/decision', { user: 'alice' }, NOW).decision.allow, true);
  });

  it('an input larger than the free memory is written into grown memory, byte for byte (multi-byte text included); one beyond the ceiling is an eval error and the engine goes on', async () => {
    const ceiling = 64 * 1024 * 1024;
    const engine = await loadPolicyEngine(basicBundle, { maxMemoryBytes: ceiling });
    const before = engine.memoryBytes;
    // ~3 MiB of UTF-8 (1-, 2-, 3- and 4-byte characters), far past the memory the module started with.
    const text = 'aé€😀'.repeat(300_000);
    assert.deepEqual(engine.evaluateRaw('fixtures/echo', { result: { text } }, NOW), [{ result: { text } }]);
    assert.ok(engine.memoryBytes > before, 'the memory grew for the input');
    assertPolicyError(() => engine.evaluate('fixtures/echo', { result: { text: 'x'.repeat(2 * ceiling) } }, NOW), 'policy_eval_error');
    assert.ok(engine.memoryBytes <= ceiling);
    assert.equal(engine.evaluate('fixtures/decision', { user: 'alice' }, NOW).decision.allow, true);
  });

  it('stays bounded over 20k evaluations, errors included', async () => {
    const engine = await loadPolicyEngine(basicBundle);
    const input = (i: number): unknown => ({ user: i % 2 ? 'alice' : 'mallory', request: { path: `/v1/items/${i % 1000}`, headers: { 'x-id': String(i) } }, now_ns: NOW + BigInt(i) });
    for (let i = 0; i < 200; i++) engine.evaluate('fixtures/decision', input(i), NOW);
    const warm = engine.memoryBytes;
    let allowed = 0;
    for (let i = 0; i < 20_000; i++) {
      if (i % 500 === 0) assertPolicyError(() => engine.evaluate('fixtures/conflict', { values: [1, 2] }, NOW), 'policy_eval_error');
      if (engine.evaluate('fixtures/decision', input(i), NOW).decision.allow) allowed++;
    }
    assert.equal(allowed, 10_000);
    assert.equal(engine.memoryBytes, warm, `memory grew from ${warm} to ${engine.memoryBytes} bytes`);
  });
});

describe('builtin registry', () => {
  it('sdkBuiltinNames lists what the SDK still implements in JS (not what regate replaces)', () => {
    const names = sdkBuiltinNames();
    for (const name of ['json.is_valid', 'regex.split', 'yaml.marshal', 'yaml.unmarshal', 'yaml.is_valid']) assert.ok(names.has(name), name);
    for (const name of REPLACED_SDK_BUILTINS) assert.ok(!names.has(name), name);
    assert.ok(REPLACED_SDK_BUILTINS.has('sprintf'));
    assert.ok(!names.has('time.now_ns'));
  });

  it('hostBuiltins has the time and encoding builtins, in a fresh object per call', () => {
    const a = hostBuiltins();
    for (const name of ['time.now_ns', 'time.weekday', 'crypto.sha256', 'hex.encode']) assert.equal(typeof a[name], 'function', name);
    delete a['time.now_ns'];
    assert.equal(typeof hostBuiltins()['time.now_ns'], 'function');
  });

  it('no host builtin is shadowed by the SDK', () => {
    const sdk = sdkBuiltinNames();
    assert.deepEqual(Object.keys(hostBuiltins()).filter((n) => sdk.has(n)), []);
  });
});

describe('parseBundle → loadPolicyEngine', () => {
  it('works from bytes, with data only from the bundle', async () => {
    // A bundle assembled by hand around the compiled module: data comes from data.json files.
    const bundle = parseBundle(gzipSync(makeTar([['policy.wasm', basicBundle.wasm], ['data.json', new TextEncoder().encode('{"allowed_teams":["ops"]}')], ['teams/ops/data.json', new TextEncoder().encode('["carol"]')]])), 'mem');
    const engine = await loadPolicyEngine(bundle);
    assert.equal(engine.evaluate('fixtures/decision', { user: 'carol' }, NOW).decision.allow, true);
    assert.equal(engine.evaluate('fixtures/decision', { user: 'alice' }, NOW).decision.allow, false);
  });
});

describe('lone surrogates in the input', () => {
  // OPA reads the same input as JSON text, where JSON.stringify writes each
  // lone code unit as an escape: Go's decoder makes it U+FFFD.
  const cases = ['\ud800', 'a\ud800\u0000b', '\udc00\ud800x', 'ok\ud83d\ude00', '\\ud800'];

  async function opaAnswers(input: unknown): Promise<Record<string, unknown>> {
    const dir = await mkdtemp(join(tmpdir(), 'regate-surrogates-'));
    try {
      await writeFile(join(dir, 'input.json'), JSON.stringify(input));
      const { stdout } = await execFileP(opaBin(), ['eval', '-f', 'json', '-d', join(repoRoot, 'test/fixtures/policy/basic'), '-i', join(dir, 'input.json'), 'digest := data.fixtures.digest; greeting := data.fixtures.greeting; echo := data.fixtures.echo']);
      return (JSON.parse(stdout) as { result: [{ bindings: Record<string, unknown> }] }).result[0].bindings;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  it('decide as in OPA: the policy, SDK builtins and host builtins all see U+FFFD', async () => {
    const engine = await loadPolicyEngine(basicBundle);
    for (const s of cases) {
      const input = { user: s, result: { s, [s]: [s] } };
      const opa = await opaAnswers(input);
      const ours = {
        digest: (engine.evaluateRaw('fixtures/digest', input, NOW)[0] as { result: unknown }).result,
        greeting: (engine.evaluateRaw('fixtures/greeting', input, NOW)[0] as { result: unknown }).result,
        echo: (engine.evaluateRaw('fixtures/echo', input, NOW)[0] as { result: unknown }).result,
      };
      assert.deepEqual(ours, opa, JSON.stringify(s));
      assert.equal(engine.evaluate('fixtures/allow_bool', { user: s }, NOW).decision.allow, false);
    }
  });
});

/** Minimal ustar writer for the test above. */
function makeTar(files: [string, Uint8Array][]): Uint8Array {
  const enc = new TextEncoder();
  const blocks: Uint8Array[] = [];
  for (const [name, data] of files) {
    const h = new Uint8Array(512);
    h.set(enc.encode(name), 0);
    h.set(enc.encode('0000644\0'), 100);
    h.set(enc.encode(`${data.length.toString(8).padStart(11, '0')}\0`), 124);
    h.set(enc.encode('0'), 156);
    h.set(enc.encode('ustar\u000000'), 257);
    h.set(enc.encode('        '), 148);
    const sum = h.reduce((a, b) => a + b, 0);
    h.set(enc.encode(`${sum.toString(8).padStart(6, '0')}\0 `), 148);
    const body = new Uint8Array(Math.ceil(data.length / 512) * 512);
    body.set(data);
    blocks.push(h, body);
  }
  blocks.push(new Uint8Array(1024));
  return Buffer.concat(blocks);
}
