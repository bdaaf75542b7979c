#!/usr/bin/env node
// npm run bench — the same load against five ways of serving one API call,
// side by side, on this machine, in one go (see bench/README.md):
//
//   a  the upstream directly
//   b  a bare pass-through proxy on regate's stack (node:http + undici): the ceiling
//   c  regate, full path, tokens reused by each client connection
//   d  regate, a distinct token on every request (no cache can help)
//   e  node proxy + jose verification + `opa run --server` asked per request over REST
//   c2 regate with `workers: 2` (both cores), same load as c
//   f  regate's authz listener (`listen.authz`, forward_auth): the check requests a
//      Caddy/Traefik in front would send for c's request — decisions only, no forward
//   tb a bare TLS proxy (node https + undici): the ceiling over TLS
//   tc regate over TLS (HTTP/1.1), th2 regate HTTP/2 over TLS (ALPN h2, node:http2 load)
//   ga a gRPC upstream direct (@grpc/grpc-js unary ModelInfer), gc the same through regate (h2c)
//
// then b and c again at half of b's maximum throughput (open loop) for the
// latency regate adds, and the decision micro-benchmark. Writes
// bench/results/latest.json and bench/results/latest.svg.
//
//   npm run bench                          default run (≈ 3 minutes)
//   npm run bench -- --only=b,c            a subset
//   npm run bench -- --duration=20 --rounds=2
//   npm run bench -- --soak                1,000,000 requests through regate, RSS curve → results/soak.json
//   npm run bench -- --quick               2 s windows, nothing written (smoke test)
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { renderChart, renderSoakChart } from './chart.mjs';
import { writeReport } from './report.mjs';
import { childPids, cpuMicros, machineInfo, round1, rssMiB, RssSampler, threadCpuMicros } from './lib/proc.mjs';
import { freePort, start, stop, stopAll, waitForHttp, waitForLine } from './lib/stack.mjs';
import { AUDIENCE, createIssuer, ISSUER, mintTokens } from './lib/tokens.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const opaBin = process.env.OPA_BIN ?? join(root, '.tools', 'bin', 'opa');
const node = process.execPath;
// REGATE_ROOT=<another checkout> benchmarks that tree's regate with this harness (before/after).
const regateRoot = resolve(process.env.REGATE_ROOT ?? root);
// REGATE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the regate processes under load.
const regateNodeArgs = (process.env.REGATE_NODE_ARGS ?? '').split(' ').filter(Boolean);

/**
 * The V8 options regate ships with: the Dockerfile's `ENV NODE_OPTIONS`. Every
 * Node process under test (b, c, d, e's proxy) runs with them, so the
 * comparison is between code, not heap settings. BENCH_NODE_OPTIONS overrides.
 */
function shippedNodeOptions() {
  if (process.env.BENCH_NODE_OPTIONS !== undefined) return process.env.BENCH_NODE_OPTIONS;
  try {
    return /^ENV NODE_OPTIONS=(.*)$/m.exec(readFileSync(join(regateRoot, 'Dockerfile'), 'utf8'))?.[1]?.trim() ?? '';
  } catch {
    return '';
  }
}
const NODE_OPTIONS = shippedNodeOptions();
const sutEnv = { NODE_OPTIONS };

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '1' },
    only: { type: 'string' },
    soak: { type: 'boolean', default: false },
    'soak-requests': { type: 'string', default: '1000000' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string', default: join(here, 'results') },
  },
});
const QUICK = args.quick;
const DURATION_MS = (QUICK ? 2 : Number(args.duration)) * 1000;
const WARMUP_MS = (QUICK ? 1 : Number(args.warmup)) * 1000;
const CONNECTIONS = Number(args.connections);
const ROUNDS = QUICK ? 1 : Number(args.rounds);
const DISTINCT_POOL = 50_000;

const REQUEST = {
  method: 'POST',
  path: '/v1/models/sentiment/predict',
  body: JSON.stringify({ text: 'great service, fast answers' }),
  headers: { 'content-type': 'application/json', 'user-agent': 'regate-bench/1' },
};

const SCENARIOS = {
  a: 'upstream direct',
  b: 'bare proxy (node:http + undici)',
  c: 'regate (token reused)',
  d: 'regate (distinct tokens)',
  e: 'node proxy + jose + opa run --server',
  c2: 'regate, workers: 2',
  f: 'regate authz listener (forward_auth)',
  tb: 'bare TLS proxy (https + undici)',
  tc: 'regate over TLS (HTTP/1.1)',
  th2: 'regate HTTP/2 over TLS (ALPN h2)',
  ga: 'gRPC upstream direct (grpc-js unary)',
  gc: 'regate gRPC (h2c, grpc route)',
  g: 'regate broker: token exchange grants',
};

/** The TLS scenarios' certificate: the test fixtures (CN=localhost, a test CA), loopback only. */
const TLS_FILES = {
  cert: join(root, 'test', 'fixtures', 'tls', 'server.pem'),
  key: join(root, 'test', 'fixtures', 'tls', 'server-key.pem'),
  ca: join(root, 'test', 'fixtures', 'tls', 'ca.pem'),
};
const INFERENCE_PROTO = join(root, 'test', 'fixtures', 'grpc', 'inference.proto');

/**
 * Scenario g's request: an RFC 8693 exchange at the broker (`broker`), the
 * subject token (one per run: a workflow's identity token, exchanged per step)
 * in the form body; the policy decides, regate signs an ES256 token.
 */
function grantRequest(subjectToken) {
  const body = new URLSearchParams({
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: subjectToken,
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    audience: 'batch-api',
    scope: 'batch:submit',
  }).toString();
  return { method: 'POST', path: '/oauth2/token', body, headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'regate-bench/1' } };
}

/**
 * Scenario f's request: what Caddy's forward_auth / Traefik's forwardAuth send
 * regate for REQUEST (method and target in X-Forwarded-*, no body).
 */
const CHECK_REQUEST = {
  method: 'GET',
  path: '/_regate_authz',
  headers: {
    'x-forwarded-method': REQUEST.method,
    'x-forwarded-uri': REQUEST.path,
    'x-forwarded-host': '127.0.0.1',
    'x-forwarded-proto': 'http',
    'x-forwarded-for': '127.0.0.1',
    ...REQUEST.headers,
  },
};

const work = mkdtempSync(join(tmpdir(), 'regate-bench-'));
let interrupted = false;
process.on('SIGINT', () => {
  interrupted = true;
  void stopAll().finally(() => {
    rmSync(work, { recursive: true, force: true });
    process.exit(130);
  });
});

function log(msg) {
  process.stderr.write(`${msg}\n`);
}

// ---------------------------------------------------------------- setup

function buildBundle() {
  const out = join(work, 'bundle.tar.gz');
  const policy = join(root, 'examples', 'quickstart', 'policy');
  // Scenario g's broker entrypoint rides along (lib/broker.rego); the routes' policy is the quickstart's.
  execFileSync(opaBin, ['build', '-t', 'wasm', '--ignore', '*_test.rego', '--revision', 'bench', '-e', 'regate/authz/decision', '-e', 'bench/broker/grant', '-o', out, policy, join(root, 'rego'), join(here, 'lib', 'broker.rego')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return out;
}

/**
 * Compile regate as it ships (`tsc -p tsconfig.build.json`, what the Dockerfile
 * runs) into the temp directory — never into the tree's dist/, which other
 * work may be using — and return the entry point. Running from src/*.ts would
 * add Node's TypeScript stripping (its wasm compiler) to RSS.
 */
function buildRegate() {
  const dir = join(work, 'regate');
  mkdirSync(dir);
  symlinkSync(join(regateRoot, 'node_modules'), join(dir, 'node_modules'));
  copyFileSync(join(regateRoot, 'package.json'), join(dir, 'package.json'));
  const tsc = join(regateRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(node, [tsc, '-p', join(regateRoot, 'tsconfig.build.json'), '--outDir', join(dir, 'dist'), '--sourceMap', 'false'], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    // tsc emits despite type errors; a tree in the middle of other work may have some.
    log(`# warning: tsc reported errors building regate (using the emitted JavaScript): ${String(err.stdout ?? '').split('\n')[0]}`);
  }
  const entry = join(dir, 'dist', 'cli', 'main.js');
  if (!existsSync(entry)) throw new Error(`building regate produced no ${entry}`);
  return entry;
}
let regateEntry = '';

/** The gRPC scenario's bundle: examples/grpc-inference/policy (per-method scopes). */
function buildGrpcBundle() {
  const out = join(work, 'grpc-bundle.tar.gz');
  execFileSync(opaBin, ['build', '-t', 'wasm', '--ignore', '*_test.rego', '--revision', 'bench', '-e', 'inference/authz/decision', '-o', out, join(root, 'examples', 'grpc-inference', 'policy')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return out;
}

/** The grpc-inference example's config, pointed at the bench gRPC upstream, the bench issuer and bundle. */
function writeGrpcConfig(upstreamOrigin, destination) {
  const config = parseYaml(readFileSync(join(root, 'examples', 'grpc-inference', 'regate.yaml'), 'utf8'));
  config.listen = { proxy: { host: '127.0.0.1', port: 0, http2: { h2c: true } }, admin: { host: '127.0.0.1', port: 0 } };
  config.upstreams.triton.url = upstreamOrigin;
  config.issuers[0] = { ...config.issuers[0], issuer: ISSUER, audiences: [AUDIENCE], jwks_file: join(work, 'jwks.json') };
  config.policy.bundle = join(work, 'grpc-bundle.tar.gz');
  config.decision_log = { ...config.decision_log, destination };
  const file = join(work, 'regate-grpc.yaml');
  writeFileSync(file, toYaml(config));
  return file;
}

function writeRegateConfig(upstreamOrigin, { workers, destination, authz, tls, broker }) {
  // The quickstart's own config, pointed at the bench upstream, keys and bundle.
  const config = parseYaml(readFileSync(join(root, 'examples', 'quickstart', 'regate.yaml'), 'utf8'));
  config.listen = { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } };
  // TLS (ALPN offers h2 and http/1.1: the load generator picks its protocol).
  if (tls) config.listen.proxy.tls = { cert_file: TLS_FILES.cert, key_file: TLS_FILES.key };
  if (authz) config.listen.authz = { host: '127.0.0.1', port: 0, protocol: 'forward_auth' };
  config.upstreams['model-api'].url = upstreamOrigin;
  config.issuers[0].jwks_file = join(work, 'jwks.json');
  config.policy.bundle = join(work, 'bundle.tar.gz');
  config.decision_log = { ...config.decision_log, destination };
  if (workers !== undefined) config.workers = workers;
  if (broker) {
    const key = join(work, 'broker-key.jwk');
    if (!existsSync(key)) writeFileSync(key, JSON.stringify({ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), kid: 'bench-broker' }));
    config.broker = { issuer: 'https://broker.bench.regate.dev', signing_keys: [{ file: key, use: 'active' }], entrypoint: 'bench/broker/grant', audiences: ['batch-api'], client_auth: ['subject_token'] };
  }
  const file = join(work, `regate-${workers ?? 1}${authz ? '-authz' : ''}${tls ? '-tls' : ''}${broker ? '-broker' : ''}.yaml`);
  writeFileSync(file, toYaml(config));
  return file;
}

// ---------------------------------------------------------------- stacks

async function startJsonServer(script, argv, name, env = {}) {
  const proc = start(node, [join(here, 'lib', script), ...argv], { cwd: root, env });
  const { port } = await waitForLine(proc, (r) => typeof r.port === 'number');
  return { name, proc, origin: `http://127.0.0.1:${port}`, pids: () => [proc.pid] };
}

async function startRegate(upstream, { workers, destination = join(work, 'decisions.log'), authz = false, tls = false, grpc = false, broker = false } = {}) {
  const config = grpc ? writeGrpcConfig(upstream.origin, destination) : writeRegateConfig(upstream.origin, { workers, destination, authz, tls, broker });
  const proc = start(node, [...regateNodeArgs, regateEntry, 'serve', '--config', config], { cwd: regateRoot, env: { ...sutEnv, REGATE_LOG_LEVEL: 'info' } });
  const listening = await waitForLine(proc, (r) => r.msg === 'listening');
  await waitForHttp(`${listening.admin}/readyz`);
  return {
    name: 'regate',
    proc,
    origin: authz ? listening.authz : listening.proxy,
    admin: listening.admin,
    destination,
    pids: () => [proc.pid, ...childPids(proc.pid)],
  };
}

async function startOpaStack(upstream) {
  const port = await freePort();
  const opa = start(opaBin, ['run', '--server', '--addr', `127.0.0.1:${port}`, '--log-level', 'error', '--skip-version-check', join(root, 'examples', 'quickstart', 'policy', 'authz.rego')], { cwd: root });
  await waitForHttp(`http://127.0.0.1:${port}/health`);
  const proxy = await startJsonServer('opa-proxy.mjs', [upstream.origin, `http://127.0.0.1:${port}`, join(work, 'jwks.json')], 'opa-proxy', sutEnv);
  return {
    name: 'opa-proxy',
    proc: proxy.proc,
    opa,
    origin: proxy.origin,
    pids: () => [proxy.proc.pid, opa.pid],
    parts: { 'node proxy': () => [proxy.proc.pid], opa: () => [opa.pid] },
    async stop() {
      await stop(proxy.proc);
      await stop(opa);
    },
  };
}

async function stopStack(stack) {
  if (stack.stop) await stack.stop();
  else await stop(stack.proc);
}

// ---------------------------------------------------------------- measuring

/**
 * Run the load generator against `origin` and account CPU (utime+stime) of
 * every process over exactly the measured window, and RSS during it.
 */
async function runLoad({ origin, tokens, tokenMode, rate, requests, progressEvery, onProgress, request = REQUEST, protocol, ca }, accounts) {
  const optsFile = join(work, `load-${Date.now()}.json`);
  writeFileSync(
    optsFile,
    JSON.stringify({
      origin,
      method: request.method,
      path: request.path,
      body: request.body,
      headers: request.headers,
      tokens,
      tokenMode,
      connections: CONNECTIONS,
      warmupMs: WARMUP_MS,
      durationMs: DURATION_MS,
      rate,
      requests,
      progressEvery,
      protocol,
      ca,
      proto: INFERENCE_PROTO,
    }),
  );
  let before = null;
  let sampler = null;
  const gen = start(node, [join(here, 'lib', 'loadgen.mjs'), optsFile], {
    cwd: root,
    onLine: (stream, line) => {
      if (stream !== 'stdout' || !line.startsWith('{')) return;
      const ev = JSON.parse(line);
      if (ev.event === 'start') {
        before = snapshot(accounts, gen.pid);
        sampler = new RssSampler(() => accounts.sut());
      } else if (ev.event === 'progress') {
        onProgress?.(ev);
      }
    },
  });
  const end = await waitForLine(gen, (r) => r.event === 'end', WARMUP_MS + DURATION_MS + 3_600_000);
  const after = snapshot(accounts, gen.pid);
  const rss = sampler.stop();
  await gen.exited;
  rmSync(optsFile, { force: true });

  const cpuPerReq = (key) => {
    const d = after[key] - before[key];
    return Number.isFinite(d) && end.requests > 0 ? round1(d / end.requests) : null;
  };
  const parts = {};
  for (const key of Object.keys(after)) if (key.startsWith('part:')) parts[key.slice(5)] = cpuPerReq(key);
  const threads = {};
  for (const key of Object.keys(after)) if (key.startsWith('thread:') && before[key] !== undefined) threads[key.slice(7)] = cpuPerReq(key);
  return {
    requests: end.requests,
    ok: end.ok,
    errors: end.errors,
    statuses: end.statuses,
    seconds: round1(end.seconds * 10) / 10,
    rps: Math.round(end.rps),
    latency_us: end.latency_us,
    cpu_us_per_request: cpuPerReq('sut'),
    cpu_us_per_request_by_part: Object.keys(parts).length ? parts : undefined,
    cpu_us_per_request_by_thread: threads,
    upstream_cpu_us_per_request: cpuPerReq('upstream'),
    loadgen_cpu_us_per_request: round1(end.loadgen_cpu_us_per_request),
    rss_mb: rss,
  };
}

function snapshot(accounts, loadgenPid) {
  const sum = (pids) => pids.reduce((s, pid) => s + (cpuMicros(pid) ?? NaN), 0);
  const snap = { sut: sum(accounts.sut()), upstream: sum(accounts.upstream()), loadgen: cpuMicros(loadgenPid) };
  // Threads of the processes under test by name: is the main (JS) thread the bottleneck, or GC / I/O helpers?
  for (const pid of accounts.sut()) {
    for (const [name, us] of Object.entries(threadCpuMicros(pid))) snap[`thread:${name}`] = (snap[`thread:${name}`] ?? 0) + us;
  }
  for (const [name, pids] of Object.entries(accounts.parts ?? {})) snap[`part:${name}`] = sum(pids());
  return snap;
}

/** A few counters from regate's /metrics, to check the run did what it claims. */
async function regateCounters(admin) {
  const text = await (await fetch(`${admin}/metrics`)).text();
  const total = (name, filter = () => true) => {
    let s = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith(name)) continue;
      const m = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line);
      if (m && m[1] === name && filter(m[2] ?? '')) s += Number(m[3]);
    }
    return s;
  };
  return {
    requests_allow_2xx: total('regate_requests_total', (l) => l.includes('decision="allow"') && l.includes('status_class="2xx"')),
    requests_total: total('regate_requests_total'),
    token_cache_hits: total('regate_token_cache_lookups_total', (l) => l.includes('result="hit"')),
    token_cache_misses: total('regate_token_cache_lookups_total', (l) => l.includes('result="miss"')),
    decision_log_errors: total('regate_decision_log_errors_total'),
    broker_grants: total('regate_broker_grants_total', (l) => l.includes('result="granted"')),
    broker_refusals: total('regate_broker_grants_total', (l) => !l.includes('result="granted"')),
  };
}

// ---------------------------------------------------------------- scenarios

/** The gRPC upstream, started with the first gRPC scenario. */
let grpcUpstream = null;

async function scenario(key, upstream, issuer, load = {}) {
  if ((key === 'ga' || key === 'gc') && grpcUpstream === null) {
    buildGrpcBundle();
    grpcUpstream = await startJsonServer('grpc-upstream.mjs', [INFERENCE_PROTO], 'grpc-upstream');
    issuer.grpc = mintTokens(issuer, CONNECTIONS, { claims: { scope: 'infer' } });
  }
  const up = key === 'ga' || key === 'gc' ? grpcUpstream : upstream;
  let stack;
  if (key === 'a') stack = { name: 'upstream', origin: upstream.origin, pids: upstream.pids, stop: async () => {} };
  else if (key === 'ga') stack = { name: 'grpc-upstream', origin: grpcUpstream.origin, pids: grpcUpstream.pids, stop: async () => {} };
  else if (key === 'gc') stack = await startRegate(grpcUpstream, { grpc: true });
  else if (key === 'tb') {
    stack = await startJsonServer('bare-proxy.mjs', [upstream.origin, '--tls', TLS_FILES.cert, TLS_FILES.key], 'bare-tls-proxy', sutEnv);
    stack.origin = stack.origin.replace('http:', 'https:');
  }
  else if (key === 'tc' || key === 'th2') stack = await startRegate(upstream, { tls: true });
  else if (key === 'b') stack = await startJsonServer('bare-proxy.mjs', [upstream.origin], 'bare-proxy', sutEnv);
  else if (key === 'c' || key === 'd') stack = await startRegate(upstream);
  else if (key === 'c2') stack = await startRegate(upstream, { workers: 2 });
  else if (key === 'e') stack = await startOpaStack(upstream);
  else if (key === 'f') stack = await startRegate(upstream, { authz: true });
  else if (key === 'g') stack = await startRegate(upstream, { broker: true });
  else throw new Error(`unknown scenario ${key}`);
  try {
    const tokenMode = key === 'd' ? 'distinct' : 'reuse';
    const tokens = ['a', 'b', 'tb', 'ga', 'g'].includes(key) ? undefined : key === 'd' ? issuer.distinct : key === 'gc' ? issuer.grpc : issuer.perConnection;
    const accounts = { sut: stack.pids, upstream: up.pids, parts: stack.parts };
    // https:// origins: verified with the fixtures' CA. th2 speaks HTTP/2 (ALPN h2), ga / gc gRPC.
    const transport = {
      ...(key === 'tb' || key === 'tc' || key === 'th2' ? { ca: TLS_FILES.ca } : {}),
      ...(key === 'th2' ? { protocol: 'h2' } : key === 'ga' || key === 'gc' ? { protocol: 'grpc' } : {}),
    };
    const request = key === 'f' ? { request: CHECK_REQUEST } : key === 'g' ? { request: grantRequest(issuer.perConnection[0]) } : {};
    const result = await runLoad({ origin: stack.origin, tokens, tokenMode, ...transport, ...request, ...load }, accounts);
    if (stack.admin) result.regate = await regateCounters(stack.admin);
    if (stack.destination) {
      try {
        result.decision_log_bytes = statSync(stack.destination).size;
      } catch {
        result.decision_log_bytes = 0;
      }
      rmSync(stack.destination, { force: true });
    }
    return result;
  } finally {
    await stopStack(stack);
  }
}

function ratio(x, y) {
  return x && y ? Math.round((x / y) * 100) / 100 : null;
}

function fmtRow(key, label, r) {
  const l = r.latency_us;
  const cells = [
    key.padEnd(4),
    label.padEnd(38),
    String(r.rps).padStart(7),
    (l.p50 / 1000).toFixed(2).padStart(7),
    (l.p99 / 1000).toFixed(2).padStart(7),
    String(r.cpu_us_per_request ?? '-').padStart(8),
    String(r.rss_mb.peak_mb).padStart(7),
    String(r.loadgen_cpu_us_per_request).padStart(7),
    String(r.requests - r.ok).padStart(5),
  ];
  return cells.join(' ');
}

const HEADER = `${'id'.padEnd(4)} ${'scenario'.padEnd(38)} ${'req/s'.padStart(7)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'cpu µs/r'.padStart(8)} ${'RSS MB'.padStart(7)} ${'gen µs'.padStart(7)} ${'!2xx'.padStart(5)}`;

async function micro() {
  const out = execFileSync(node, [join(here, 'micro-decision.ts'), '--json'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').at(-1));
}

function versions() {
  return {
    node: process.version,
    opa: execFileSync(opaBin, ['version'], { encoding: 'utf8' }).split('\n')[0].replace('Version: ', ''),
    undici: JSON.parse(readFileSync(join(root, 'node_modules', 'undici', 'package.json'), 'utf8')).version,
    regate: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version,
  };
}

// ---------------------------------------------------------------- main

async function main() {
  const machine = { ...machineInfo(), ...versions() };
  log(`# regate bench — ${machine.nproc} × ${machine.cpu_model}, node ${machine.node}, opa ${machine.opa}, load ${machine.loadavg_before.join(' ')}`);
  log(`# ${CONNECTIONS} keep-alive connections, ${WARMUP_MS / 1000} s warm-up + ${DURATION_MS / 1000} s measured per scenario, ${ROUNDS} round(s)`);
  log(`# processes under test run with NODE_OPTIONS=${JSON.stringify(NODE_OPTIONS)} (the Dockerfile's)`);
  buildBundle();
  regateEntry = buildRegate();
  const issuer = createIssuer();
  writeFileSync(join(work, 'jwks.json'), JSON.stringify(issuer.jwks));
  issuer.perConnection = mintTokens(issuer, CONNECTIONS);
  const upstream = await startJsonServer('upstream.mjs', [], 'upstream');

  try {
    if (args.soak) return await soak(upstream, issuer, machine);

    const wanted = args.only ? args.only.split(',') : Object.keys(SCENARIOS);
    if (wanted.includes('d')) {
      log(`# minting ${DISTINCT_POOL} distinct tokens for d`);
      issuer.distinct = mintTokens(issuer, DISTINCT_POOL);
    }
    const scenarios = {};
    log(HEADER);
    for (let round = 0; round < ROUNDS && !interrupted; round++) {
      for (const key of wanted) {
        const r = await scenario(key, upstream, issuer);
        r.label = SCENARIOS[key];
        log(fmtRow(key, SCENARIOS[key], r));
        if (process.env.BENCH_VERBOSE) log(`     threads µs/req ${JSON.stringify(r.cpu_us_per_request_by_thread)} ${r.regate ? JSON.stringify(r.regate) : ''}`);
        // Best of the rounds by throughput: noise on a shared machine only ever slows a run down.
        const prev = scenarios[key];
        r.rounds_rps = [...(prev?.rounds_rps ?? []), r.rps];
        if (!prev || r.rps > prev.rps) scenarios[key] = r;
        else prev.rounds_rps = r.rounds_rps;
      }
    }

    // Latency regate adds at a fixed rate (open loop): at half of b's maximum (the target), and
    // at half of regate's own maximum — when half of b's exceeds what c sustains, the first
    // only measures c's queue.
    const atRate = async (rate, tag) => {
      log(`# ${tag}: ${rate} req/s (open loop), b then c`);
      const b = await scenario('b', upstream, issuer, { rate });
      log(fmtRow('b½', SCENARIOS.b, b));
      const c = await scenario('c', upstream, issuer, { rate });
      log(fmtRow('c½', SCENARIOS.c, c));
      const addedMs = (p) => Math.round((c.latency_us[p] - b.latency_us[p]) / 10) / 100;
      return { rate, b, c, p99_added_ms: addedMs('p99'), p50_added_ms: addedMs('p50') };
    };
    let halfLoad = null;
    let halfLoadOfC = null;
    if (scenarios.b && scenarios.c && !interrupted) {
      halfLoad = await atRate(Math.round(scenarios.b.rps / 2), "half of b's maximum");
      if (!interrupted) halfLoadOfC = await atRate(Math.round(scenarios.c.rps / 2), "half of c's maximum");
    }

    log('# decision micro-benchmark');
    const microResult = wanted.includes('c') ? await micro() : null;
    if (microResult) log(`# one decision (input + eval): median ${microResult.total_us.p50} µs, p99 ${microResult.total_us.p99} µs`);

    const s = scenarios;
    const ratios = {
      c_over_b: ratio(s.c?.rps, s.b?.rps),
      d_over_b: ratio(s.d?.rps, s.b?.rps),
      c_over_e: ratio(s.c?.rps, s.e?.rps),
      d_over_e: ratio(s.d?.rps, s.e?.rps),
      c2_over_c: ratio(s.c2?.rps, s.c?.rps),
      cpu_per_request_c_over_e: ratio(s.c?.cpu_us_per_request, s.e?.cpu_us_per_request),
      f_over_c: ratio(s.f?.rps, s.c?.rps),
      f_over_e: ratio(s.f?.rps, s.e?.rps),
      tc_over_tb: ratio(s.tc?.rps, s.tb?.rps),
      th2_over_tc: ratio(s.th2?.rps, s.tc?.rps),
      gc_over_ga: ratio(s.gc?.rps, s.ga?.rps),
      cpu_per_request_f_over_c: ratio(s.f?.cpu_us_per_request, s.c?.cpu_us_per_request),
    };
    const targets = [
      target('c ≥ 0.75 × b req/s', ratios.c_over_b, (v) => v >= 0.75),
      target('p99 added over b at half load ≤ 1 ms', halfLoad?.p99_added_ms, (v) => v <= 1),
      target('c ≥ 2 × e req/s', ratios.c_over_e, (v) => v >= 2),
      target('CPU per request c < e', ratios.cpu_per_request_c_over_e, (v) => v < 1),
      target('d ≥ 0.45 × b req/s', ratios.d_over_b, (v) => v >= 0.45),
      target('regate RSS ≤ 120 MB under load (c peak)', s.c?.rss_mb.peak_mb, (v) => v <= 120),
      target('one decision ≤ 20 µs median', microResult?.total_us.p50, (v) => v <= 20),
    ];
    log('# ratios');
    for (const [k, v] of Object.entries(ratios)) log(`  ${k.padEnd(26)} ${v ?? '-'}`);
    log('# targets');
    for (const t of targets) log(`  ${t.met === null ? ' -  ' : t.met ? 'met ' : 'MISS'} ${t.name}: ${t.measured ?? '-'}`);

    const results = {
      generated_at: new Date().toISOString(),
      machine: { ...machine, loadavg_after: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number) },
      method: {
        connections: CONNECTIONS,
        warmup_s: WARMUP_MS / 1000,
        duration_s: DURATION_MS / 1000,
        rounds: ROUNDS,
        request: { method: REQUEST.method, path: REQUEST.path, body_bytes: REQUEST.body.length },
        tokens: { reuse: `one token per connection (${CONNECTIONS})`, distinct: `${DISTINCT_POOL} distinct tokens cycled in order (> 5 × token_cache.max_entries)` },
        decision_log: 'file in a temp directory (written, then deleted)',
        node_options: NODE_OPTIONS,
        regate: 'compiled with tsconfig.build.json, run as node dist/cli/main.js serve (as the Dockerfile does)',
      },
      scenarios,
      half_load: halfLoad,
      half_load_of_c: halfLoadOfC,
      ratios,
      micro: microResult,
      targets,
    };
    if (!QUICK) {
      mkdirSync(args.out, { recursive: true });
      writeFileSync(join(args.out, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
      writeFileSync(join(args.out, 'latest.svg'), renderChart(results));
      const soakFile = join(args.out, 'soak.json');
      const readme = args.out === join(here, 'results');
      if (readme) writeReport(results, existsSync(soakFile) ? JSON.parse(readFileSync(soakFile, 'utf8')) : null);
      log(`# wrote ${join(args.out, 'latest.json')} and latest.svg${readme ? ', and the results section of bench/README.md' : ''}`);
    }
  } finally {
    await stop(upstream.proc);
    if (grpcUpstream !== null) await stop(grpcUpstream.proc);
  }
}

function target(name, measured, ok) {
  return { name, measured: measured ?? null, met: measured === null || measured === undefined ? null : ok(measured) };
}

/** One million requests (by default) through regate; RSS after every 50,000. */
async function soak(upstream, issuer, machine) {
  const total = Number(args['soak-requests']);
  const every = Math.max(1000, Math.round(total / 20));
  // /dev/null: the log is serialized and written (syscalls), a million lines are not kept on disk.
  const stack = await startRegate(upstream, { destination: '/dev/null' });
  const curve = [];
  const sample = (requests) => {
    let rss = 0;
    let anon = 0;
    for (const pid of stack.pids()) {
      const m = rssMiB(pid);
      if (m === null) continue;
      rss += m.rss;
      anon += m.anon;
    }
    curve.push({ requests, rss_mb: round1(rss), anon_mb: round1(anon) });
    log(`  ${String(requests).padStart(8)} requests  RSS ${round1(rss)} MB (anonymous ${round1(anon)} MB)`);
  };
  log(`# soak: ${total} requests through regate (c), RSS every ${every}`);
  try {
    sample(0);
    const r = await runLoad(
      { origin: stack.origin, tokens: issuer.perConnection, tokenMode: 'reuse', requests: total, progressEvery: every, onProgress: (ev) => sample(ev.requests) },
      { sut: stack.pids, upstream: upstream.pids },
    );
    r.regate = await regateCounters(stack.admin);
    const warm = curve.filter((p) => p.requests >= total / 10).map((p) => p.rss_mb);
    const result = {
      generated_at: new Date().toISOString(),
      machine,
      requests: total,
      result: r,
      curve,
      rss_range_after_warmup_mb: round1(Math.max(...warm) - Math.min(...warm)),
      rss_drift_mb: rssDrift(curve, total),
    };
    log(`# soak: ${r.rps} req/s, RSS ${Math.min(...warm)}–${Math.max(...warm)} MB after the first 10 %`);
    if (!QUICK) {
      mkdirSync(args.out, { recursive: true });
      writeFileSync(join(args.out, 'soak.json'), `${JSON.stringify(result, null, 2)}\n`);
      writeFileSync(join(args.out, 'soak.svg'), renderSoakChart(result));
      const latestFile = join(args.out, 'latest.json');
      if (args.out === join(here, 'results') && existsSync(latestFile)) writeReport(JSON.parse(readFileSync(latestFile, 'utf8')), result);
      log(`# wrote ${join(args.out, 'soak.json')} and soak.svg`);
    }
  } finally {
    await stopStack(stack);
  }
}

/**
 * RSS trend over a soak: mean of the last quarter of the samples minus mean of
 * the second quarter (the first is warm-up). The GC sawtooth averages out; a
 * leak does not.
 */
export function rssDrift(curve, total) {
  const mean = (xs) => xs.reduce((s, p) => s + p.rss_mb, 0) / xs.length;
  const q = (from, to) => curve.filter((p) => p.requests > from * total && p.requests <= to * total);
  return round1(mean(q(0.75, 1)) - mean(q(0.25, 0.5)));
}

try {
  await main();
} finally {
  await stopAll();
  rmSync(work, { recursive: true, force: true });
}
