/**
 * Micro-benchmark of one decision, the part of regate's request path that is
 * neither HTTP nor crypto: building the policy input (`buildInput` +
 * `input.time`) and evaluating the quickstart policy in wasm (serialize input,
 * `opa_eval`, parse and normalize the result) — exactly the calls
 * src/pipeline/check.ts makes, on the quickstart bundle built by the pinned
 * opa CLI, with the identity and headers of the bench's requests.
 *
 * Every iteration is timed on its own (process.hrtime.bigint, ~50 ns of
 * overhead); reported as median / p90 / p99 in µs after a warm-up.
 *
 *   node bench/micro-decision.ts [--iterations N] [--json]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { mapIdentity } from '../src/authn/claims.ts';
import { parseConfig } from '../src/config/load.ts';
import { buildInput } from '../src/input/build.ts';
import { TimeInputBuilder } from '../src/input/time.ts';
import { readBundle } from '../src/policy/bundle.ts';
import { hostBuiltins } from '../src/policy/builtins/index.ts';
import { loadPolicyEngine } from '../src/policy/wasm.ts';
import { compileHeaderPolicy } from '../src/upstream/headers.ts';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const { values } = parseArgs({ options: { iterations: { type: 'string', default: '50000' }, json: { type: 'boolean', default: false } } });
const ITERATIONS = Number(values.iterations);
const WARMUP = Math.min(20_000, ITERATIONS);

const work = mkdtempSync(join(tmpdir(), 'regate-micro-'));
const bundlePath = join(work, 'bundle.tar.gz');
try {
  execFileSync(
    process.env.OPA_BIN ?? join(root, '.tools', 'bin', 'opa'),
    ['build', '-t', 'wasm', '--ignore', '*_test.rego', '-e', 'regate/authz/decision', '-o', bundlePath, join(root, 'examples/quickstart/policy'), join(root, 'rego')],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const engine = await loadPolicyEngine(await readBundle(bundlePath), { builtins: hostBuiltins() });

  // The quickstart's own route and issuer, as the loader builds them.
  const quickstart = join(root, 'examples/quickstart/regate.yaml');
  const config = parseConfig(readFileSync(quickstart, 'utf8'), quickstart);
  const issuer = config.issuers[0]!;
  const now = Math.floor(Date.now() / 1000);
  const identity = mapIdentity(
    {
      iss: issuer.issuer,
      aud: 'sentiment-api',
      sub: 'user-7',
      jti: '6f1c1d7e-8a5b-4b53-9d0e-1f3f0b8a2c11',
      iat: now,
      exp: now + 7200,
      realm_access: { roles: ['data_scientist'] },
      email: 'user-7@example.com',
    },
    issuer,
  );
  const route = config.routes.find((r) => r.id === 'predict')!;
  const headers = {
    host: '127.0.0.1:8080',
    'content-type': 'application/json',
    'user-agent': 'regate-bench/1',
    'content-length': '40',
    authorization: 'Bearer (not shown to the policy)',
  };
  const time = new TimeInputBuilder(config.policy.timezone);
  const headerPolicy = compileHeaderPolicy(route);
  let seq = 0;

  const decide = (): { inputNs: number; evalNs: number } => {
    const t0 = process.hrtime.bigint();
    const nowNs = BigInt(Date.now()) * 1_000_000n;
    const input = buildInput({
      requestId: `00000000-0000-4000-8000-${String(seq++).padStart(12, '0')}`,
      method: 'POST',
      path: '/v1/models/sentiment/predict',
      params: { model: 'sentiment' },
      query: {},
      headers,
      host: '127.0.0.1',
      remoteAddr: '127.0.0.1',
      route,
      headerPolicy,
      identity,
      time: time.build(nowNs),
    });
    const t1 = process.hrtime.bigint();
    const { decision } = engine.evaluate('regate/authz/decision', input, nowNs);
    const t2 = process.hrtime.bigint();
    if (!decision.allow) throw new Error('the quickstart policy must allow a data_scientist to predict');
    return { inputNs: Number(t1 - t0), evalNs: Number(t2 - t1) };
  };

  for (let i = 0; i < WARMUP; i++) decide();
  const input = new Float64Array(ITERATIONS);
  const evalT = new Float64Array(ITERATIONS);
  const total = new Float64Array(ITERATIONS);
  const started = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) {
    const r = decide();
    input[i] = r.inputNs / 1000;
    evalT[i] = r.evalNs / 1000;
    total[i] = (r.inputNs + r.evalNs) / 1000;
  }
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;

  const stats = (xs: Float64Array): { p50: number; p90: number; p99: number; mean: number } => {
    const s = Float64Array.from(xs).sort();
    const at = (p: number): number => Math.round(s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]! * 100) / 100;
    let sum = 0;
    for (const x of s) sum += x;
    return { p50: at(0.5), p90: at(0.9), p99: at(0.99), mean: Math.round((sum / s.length) * 100) / 100 };
  };
  const result = {
    policy: 'examples/quickstart/policy (regate/authz/decision)',
    iterations: ITERATIONS,
    input_us: stats(input),
    eval_us: stats(evalT),
    total_us: stats(total),
    decisions_per_second: Math.round(ITERATIONS / wallS),
    wasm_memory_bytes: engine.memoryBytes,
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else {
    console.log(`one decision, quickstart policy, ${ITERATIONS} iterations (µs)`);
    console.log(`               p50      p90      p99     mean`);
    for (const [name, s] of [['input', result.input_us], ['evaluate', result.eval_us], ['total', result.total_us]] as const) {
      console.log(`${name.padEnd(10)} ${[s.p50, s.p90, s.p99, s.mean].map((v) => v.toFixed(2).padStart(8)).join(' ')}`);
    }
    console.log(`${result.decisions_per_second} decisions/s on one core`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
