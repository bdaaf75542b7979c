// scratch: start upstream + (bare|regate) and a loadgen, strace -c the SUT during measure
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { start, stop, stopAll, waitForLine, waitForHttp } from './lib/stack.mjs';
import { createIssuer, mintTokens } from './lib/tokens.mjs';
import { cpuMicros, threadCpuMicros } from './lib/proc.mjs';
const which = process.argv[2];
const regateRoot = process.env.REGATE_ROOT ?? '/work/main';
const work = mkdtempSync(join(tmpdir(), 'scratch-'));
const up = start(process.execPath, ['bench/lib/upstream.mjs']);
const { port } = await waitForLine(up, (r) => r.port);
const upstream = `http://127.0.0.1:${port}`;
const issuer = createIssuer();
writeFileSync(join(work, 'jwks.json'), JSON.stringify(issuer.jwks));
let origin, sut;
if (which === 'b') {
  sut = start(process.execPath, [...(process.env.NODE_ARGS ?? '').split(' ').filter(Boolean), 'bench/lib/bare-proxy.mjs', upstream]);
  origin = `http://127.0.0.1:${(await waitForLine(sut, (r) => r.port)).port}`;
} else {
  execFileSync('.tools/bin/opa', ['build', '-t', 'wasm', '--ignore', '*_test.rego', '-e', 'regate/authz/decision', '-o', join(work, 'b.tar.gz'), 'examples/quickstart/policy', 'rego']);
  const c = parse(readFileSync('examples/quickstart/regate.yaml', 'utf8'));
  c.listen = { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } };
  c.upstreams['model-api'].url = upstream; c.issuers[0].jwks_file = join(work, 'jwks.json'); c.policy.bundle = join(work, 'b.tar.gz');
  c.decision_log.destination = process.env.DEST ?? join(work, 'd.log');
  if (process.env.NOLOG) c.decision_log.enabled = false;
  if (process.env.WORKERS) c.workers = Number(process.env.WORKERS);
  writeFileSync(join(work, 'r.yaml'), stringify(c));
  sut = start(process.execPath, [...(process.env.NODE_ARGS ?? '').split(' ').filter(Boolean), join(regateRoot, process.env.ENTRY ?? 'src/cli/main.ts'), 'serve', '--config', join(work, 'r.yaml')], { cwd: regateRoot });
  const l = await waitForLine(sut, (r) => r.msg === 'listening'); origin = l.proxy; await waitForHttp(`${l.admin}/readyz`);
}
console.log('IDLE RSS MB', Math.round(readFileSync(`/proc/${sut.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]/1024));
if (process.env.SMAPS) console.log(execFileSync('sh', ['-c', `awk '/^[0-9a-f]+-/{name=$6} /^Rss:/{r[name]+=$2} END{for(n in r) if (r[n]>2000) print r[n], n}' /proc/${sut.pid}/smaps | sort -rn | head -12`], {encoding:'utf8'}));
const opts = { origin, method: 'POST', path: '/v1/models/sentiment/predict', body: '{"text":"great service, fast answers"}', headers: { 'content-type': 'application/json' }, tokens: mintTokens(issuer, 32), tokenMode: 'reuse', connections: 32, warmupMs: 2000, durationMs: Number(process.env.DUR ?? 5000) };
writeFileSync(join(work, 'l.json'), JSON.stringify(opts));
let st, t0, c0;
if (process.env.MEMLOG) sut.child.stderr.on('data', (d) => { for (const l of String(d).split('\n')) if (l.startsWith('MEM')) console.log(l); });
const gen = start(process.execPath, ['bench/lib/loadgen.mjs', join(work, 'l.json')], { onLine: (s, line) => {
  if (line.includes('"start"')) { c0 = threadCpuMicros(sut.pid); }
  if (line.includes('"start"') && process.env.PERF) st = spawn('perf', ['record', '-F', '4999', '-g', '-o', process.env.PERF, '-p', String(sut.pid)], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (line.includes('"start"') && process.env.STRACE) st = spawn('strace', ['-c', '-f', '-p', String(sut.pid)], { stdio: ['ignore', 'inherit', 'inherit'] });
} });
const end = await waitForLine(gen, (r) => r.event === 'end', 60000);
if (st) { st.kill('SIGINT'); await new Promise((r) => st.once('exit', r)); }
const hwm = readFileSync(`/proc/${sut.pid}/status`, 'utf8').match(/VmHWM:\s+(\d+)/)[1]; const rssNow = readFileSync(`/proc/${sut.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]; console.log('HWM MB', Math.round(hwm/1024), 'RSS MB', Math.round(rssNow/1024));
if (process.env.SMAPS) console.log(execFileSync('sh', ['-c', `awk '/^[0-9a-f]+-/{name=$6} /^Rss:/{r[name]+=$2} END{for(n in r) if (r[n]>2000) print r[n], n}' /proc/${sut.pid}/smaps | sort -rn | head -12`], {encoding:'utf8'}));
const c1 = threadCpuMicros(sut.pid); const per = {}; for (const k in c1) per[k] = Math.round((c1[k] - (c0[k] ?? 0)) / end.requests * 10) / 10;
console.log(JSON.stringify(per));
console.log(which, 'rps', Math.round(end.rps), 'requests', end.requests, 'p50', end.latency_us.p50, 'p99', end.latency_us.p99);
await stopAll();
