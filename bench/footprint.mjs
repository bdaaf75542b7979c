// Footprint A/B: regate's scenario c (quickstart, token reused, decision log to
// a file, metrics on) — closed loop, or at a fixed `--rate=<req/s>` (open loop,
// so that RSS is compared at the same allocation rate) — under variants of its process environment — V8 flags,
// malloc settings — run in interleaved rounds, reporting medians of RSS (peak,
// steady, anonymous part), idle RSS, CPU µs per request and req/s.
//
//   node bench/footprint.mjs --rounds=3 --duration=6 \
//     --variant='shipped=' \
//     --variant='semi8=--max-semi-space-size=8' \
//     --variant='arena2=MALLOC_ARENA_MAX=2 --max-semi-space-size=16'
//
// A variant is `name=` followed by space-separated words: `KEY=value` words are
// environment variables for regate, the other words are its NODE_OPTIONS
// (replacing the Dockerfile's when any is given; `shipped=` keeps them), and
// `argv:--flag` words go on node's command line (flags NODE_OPTIONS refuses,
// e.g. `argv:--single-threaded-gc`); `root:<dir>` builds that regate tree for
// this variant instead (before/after: `--variant=before=root:../old-checkout`).
// The regate tree built is this one (or REGATE_ROOT); --out=<file> writes the JSON.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { childPids, cpuMicros, round1, RssSampler, rssMiB } from './lib/proc.mjs';
import { start, stop, stopAll, waitForHttp, waitForLine } from './lib/stack.mjs';
import { createIssuer, mintTokens } from './lib/tokens.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const regateRoot = resolve(process.env.REGATE_ROOT ?? root);
const node = process.execPath;
const opaBin = process.env.OPA_BIN ?? join(root, '.tools', 'bin', 'opa');

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '6' },
    warmup: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '32' },
    rate: { type: 'string' },
    variant: { type: 'string', multiple: true, default: ['shipped='] },
    out: { type: 'string' },
  },
});
const shipped = /^ENV NODE_OPTIONS=(.*)$/m.exec(readFileSync(join(regateRoot, 'Dockerfile'), 'utf8'))?.[1]?.trim() ?? '';
const variants = args.variant.map((spec) => {
  const eq = spec.indexOf('=');
  const name = spec.slice(0, eq);
  const words = spec.slice(eq + 1).split(' ').filter(Boolean);
  const env = {};
  const flags = [];
  const argv = [];
  let variantRoot = regateRoot;
  for (const w of words) {
    if (/^[A-Z_][A-Z0-9_]*=/.test(w)) env[w.slice(0, w.indexOf('='))] = w.slice(w.indexOf('=') + 1);
    else if (w.startsWith('argv:')) argv.push(w.slice(5));
    else if (w.startsWith('root:')) variantRoot = resolve(w.slice(5));
    else flags.push(w);
  }
  env.NODE_OPTIONS = flags.length ? flags.join(' ') : shipped;
  return { name, env, argv, root: variantRoot };
});

const work = mkdtempSync(join(tmpdir(), 'regate-footprint-'));
const log = (m) => process.stderr.write(`${m}\n`);
process.on('SIGINT', () => void stopAll().finally(() => (rmSync(work, { recursive: true, force: true }), process.exit(130))));

execFileSync(opaBin, ['build', '-t', 'wasm', '--ignore', '*_test.rego', '--revision', 'bench', '-e', 'regate/authz/decision', '-o', join(work, 'bundle.tar.gz'), join(root, 'examples', 'quickstart', 'policy'), join(root, 'rego')], { stdio: ['ignore', 'ignore', 'inherit'] });
/** Compile a regate tree as it ships (tsconfig.build.json) into the temp directory, once per tree. */
const builds = new Map();
function build(tree) {
  if (builds.has(tree)) return builds.get(tree);
  const dist = join(work, `regate-${builds.size}`);
  mkdirSync(dist);
  symlinkSync(join(tree, 'node_modules'), join(dist, 'node_modules'));
  copyFileSync(join(tree, 'package.json'), join(dist, 'package.json'));
  try {
    execFileSync(node, [join(tree, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(tree, 'tsconfig.build.json'), '--outDir', join(dist, 'dist'), '--sourceMap', 'false'], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    log(`# warning: tsc reported errors building ${tree} (using the emitted JavaScript)`);
  }
  const entry = join(dist, 'dist', 'cli', 'main.js');
  builds.set(tree, entry);
  return entry;
}
for (const v of variants) v.entry = build(v.root);
const issuer = createIssuer();
writeFileSync(join(work, 'jwks.json'), JSON.stringify(issuer.jwks));
const tokens = mintTokens(issuer, Number(args.connections));

const upstreamProc = start(node, [join(here, 'lib', 'upstream.mjs')], { cwd: root });
const { port: upstreamPort } = await waitForLine(upstreamProc, (r) => typeof r.port === 'number');

const config = parseYaml(readFileSync(join(root, 'examples', 'quickstart', 'regate.yaml'), 'utf8'));
config.listen = { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } };
config.upstreams['model-api'].url = `http://127.0.0.1:${upstreamPort}`;
config.issuers[0].jwks_file = join(work, 'jwks.json');
config.policy.bundle = join(work, 'bundle.tar.gz');
config.decision_log = { ...config.decision_log, destination: join(work, 'decisions.log') };
writeFileSync(join(work, 'regate.yaml'), toYaml(config));

async function once(variant) {
  const proc = start(node, [...variant.argv, variant.entry, 'serve', '--config', join(work, 'regate.yaml')], { cwd: variant.root, env: { REGATE_LOG_LEVEL: 'info', ...variant.env } });
  const listening = await waitForLine(proc, (r) => r.msg === 'listening');
  await waitForHttp(`${listening.admin}/readyz`);
  await new Promise((r) => setTimeout(r, 1000));
  const pids = () => [proc.pid, ...childPids(proc.pid)];
  const idle = rssMiB(proc.pid);
  const optsFile = join(work, 'load.json');
  writeFileSync(optsFile, JSON.stringify({ origin: listening.proxy, method: 'POST', path: '/v1/models/sentiment/predict', body: JSON.stringify({ text: 'great service, fast answers' }), headers: { 'content-type': 'application/json' }, tokens, tokenMode: 'reuse', connections: Number(args.connections), warmupMs: Number(args.warmup) * 1000, durationMs: Number(args.duration) * 1000, ...(args.rate ? { rate: Number(args.rate) } : {}) }));
  let before;
  let sampler;
  const gen = start(node, [join(here, 'lib', 'loadgen.mjs'), optsFile], {
    cwd: root,
    onLine: (stream, line) => {
      if (stream === 'stdout' && line.startsWith('{') && JSON.parse(line).event === 'start') {
        before = pids().reduce((s, p) => s + cpuMicros(p), 0);
        sampler = new RssSampler(pids);
      }
    },
  });
  const end = await waitForLine(gen, (r) => r.event === 'end', 600_000);
  const after = pids().reduce((s, p) => s + cpuMicros(p), 0);
  const rss = sampler.stop();
  await gen.exited;
  await stop(proc);
  rmSync(join(work, 'decisions.log'), { force: true });
  return { rps: Math.round(end.rps), cpu_us: round1((after - before) / end.requests), idle_mb: round1(idle.rss), idle_anon_mb: round1(idle.anon), ...rss, p99_ms: round1(end.latency_us.p99 / 1000), non2xx: end.requests - end.ok };
}

const results = Object.fromEntries(variants.map((v) => [v.name, []]));
log(`# footprint A/B: ${variants.length} variants × ${args.rounds} rounds, ${args.warmup} s + ${args.duration} s, load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
try {
  for (let r = 0; r < Number(args.rounds); r++) {
    for (const v of variants) {
      try {
        const res = await once(v);
        results[v.name].push(res);
        log(`${r} ${v.name.padEnd(16)} ${JSON.stringify(res)}`);
      } catch (err) {
        log(`${r} ${v.name.padEnd(16)} failed: ${String(err.message).split('\n').slice(0, 3).join(' / ')}`);
      }
    }
  }
} finally {
  await stop(upstreamProc);
  rmSync(work, { recursive: true, force: true });
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : round1((s[s.length / 2 - 1] + s[s.length / 2]) / 2);
};
const keys = ['rps', 'cpu_us', 'idle_mb', 'idle_anon_mb', 'peak_mb', 'steady_mb', 'anon_peak_mb', 'anon_steady_mb', 'p99_ms'];
process.stdout.write(`load after: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n| variant | ${keys.join(' | ')} |\n|---|${keys.map(() => '---:').join('|')}|\n`);
for (const v of variants) process.stdout.write(`| ${v.name} (${JSON.stringify(v.env)}${v.argv.length ? ` ${v.argv.join(' ')}` : ''}) | ${keys.map((k) => median(results[v.name].map((x) => x[k]))).join(' | ')} |\n`);
if (args.out) writeFileSync(args.out, `${JSON.stringify({ variants, results }, null, 2)}\n`);
