// Markdown tables from bench/results/*.json, written into bench/README.md between
// the `<!-- results:start -->` and `<!-- results:end -->` markers, so the
// published numbers are always the ones the last run measured.
//
//   node bench/report.mjs      re-render from results/latest.json (and soak.json)
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const ORDER = ['a', 'b', 'c', 'c2', 'd', 'e', 'f'];
/** The transport scenarios and the baseline each is compared with. */
const TRANSPORTS = [['tb', 'tb'], ['tc', 'tb'], ['th2', 'tb'], ['ga', 'ga'], ['gc', 'ga']];

const ms = (us) => (us === null || us === undefined ? '–' : (us / 1000).toFixed(2));
const num = (x) => (x === null || x === undefined ? '–' : String(x));
const fixed = (x) => (typeof x === 'number' ? String(Math.round(x * 100) / 100) : num(x));

/** The results section of bench/README.md. */
export function renderReport(results, soak) {
  const m = results.machine;
  const s = results.scenarios;
  const b = s.b?.rps;
  const out = [];
  out.push(`Measured ${results.generated_at.slice(0, 16).replace('T', ' ')} UTC on ${m.nproc} × ${m.cpu_model} (${m.kernel}), Node ${m.node}, opa ${m.opa}, undici ${m.undici}; load average before ${m.loadavg_before.join(' ')}, after ${m.loadavg_after?.join(' ') ?? '–'}.`);
  out.push(`${results.method.connections} keep-alive connections, ${results.method.warmup_s} s warm-up + ${results.method.duration_s} s measured per scenario, best of ${results.method.rounds} round(s); \`NODE_OPTIONS=${results.method.node_options || '(none)'}\` for every Node process under test.`);
  out.push('');
  out.push('| | scenario | req/s | vs b | p50 ms | p99 ms | CPU µs/req (under test) | RSS peak MB (anon) | load gen µs/req |');
  out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const k of ORDER) {
    const r = s[k];
    if (!r) continue;
    const parts = r.cpu_us_per_request_by_part ? ` (${Object.entries(r.cpu_us_per_request_by_part).map(([n, v]) => `${n} ${v}`).join(', ')})` : '';
    out.push(`| ${k} | ${r.label} | ${r.rps} | ${b ? (r.rps / b).toFixed(2) : '–'} | ${ms(r.latency_us.p50)} | ${ms(r.latency_us.p99)} | ${num(r.cpu_us_per_request)}${parts} | ${r.rss_mb.peak_mb} (${r.rss_mb.anon_peak_mb ?? '–'}) | ${num(r.loadgen_cpu_us_per_request)} |`);
  }
  // Transports (issue 13): each against its own ceiling — TLS and HTTP/2 against the bare TLS proxy, gRPC against the gRPC upstream direct.
  const transports = TRANSPORTS.filter(([k]) => s[k]);
  if (transports.length > 0) {
    out.push('');
    out.push('TLS, HTTP/2 and gRPC (the same request; gRPC: a unary `ModelInfer` from @grpc/grpc-js):');
    out.push('');
    out.push('| | scenario | req/s | vs | p50 ms | p99 ms | CPU µs/req (under test) | RSS peak MB (anon) | load gen µs/req |');
    out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const [k, base] of transports) {
      const r = s[k];
      const ref = s[base]?.rps;
      out.push(`| ${k} | ${r.label} | ${r.rps} | ${k === base ? '1.00' : ref ? `${(r.rps / ref).toFixed(2)} × ${base}` : '–'} | ${ms(r.latency_us.p50)} | ${ms(r.latency_us.p99)} | ${num(r.cpu_us_per_request)} | ${r.rss_mb.peak_mb} (${r.rss_mb.anon_peak_mb ?? '–'}) | ${num(r.loadgen_cpu_us_per_request)} |`);
    }
  }
  // The broker (issue 15): token exchange grants, each an RFC 8693 POST answered with a freshly signed ES256 token.
  if (s.g) {
    const g = s.g;
    out.push('');
    out.push(`Token exchange (g, \`broker\`): **${g.rps} grants/s**, **${num(g.cpu_us_per_request)} µs CPU per grant** (c: ${s.c ? `${s.c.cpu_us_per_request} µs per proxied request` : '–'}), p50 ${ms(g.latency_us.p50)} ms, p99 ${ms(g.latency_us.p99)} ms, RSS peak ${g.rss_mb.peak_mb} MB; ${g.requests - g.ok} of ${g.requests} answers not 200${g.regate?.broker_grants !== undefined ? `, ${g.regate.broker_grants} grants counted by regate_broker_grants_total` : ""}.`);
  }
  for (const [h, what] of [[results.half_load, "half of b's maximum"], [results.half_load_of_c, "half of regate's (c) maximum"]]) {
    if (!h) continue;
    out.push('');
    out.push(`At ${what} (${h.rate} req/s, open loop):`);
    out.push('');
    out.push('| | req/s | p50 ms | p99 ms | p99.9 ms | CPU µs/req |');
    out.push('|---|---:|---:|---:|---:|---:|');
    for (const [k, r] of [['b', h.b], ['c', h.c]]) out.push(`| ${k} | ${r.rps} | ${ms(r.latency_us.p50)} | ${ms(r.latency_us.p99)} | ${ms(r.latency_us.p999)} | ${num(r.cpu_us_per_request)} |`);
    out.push('');
    out.push(`regate adds **${fixed(h.p50_added_ms)} ms at p50 and ${fixed(h.p99_added_ms)} ms at p99**.`);
  }
  if (results.micro) {
    const u = results.micro;
    out.push('');
    out.push(`One decision, quickstart policy (\`bench/micro-decision.ts\`, ${u.iterations} iterations): input ${u.input_us.p50} µs, evaluation ${u.eval_us.p50} µs, **total ${u.total_us.p50} µs median** (p99 ${u.total_us.p99} µs).`);
  }
  out.push('');
  out.push('| target | measured | |');
  out.push('|---|---:|---|');
  for (const t of results.targets) out.push(`| ${t.name} | ${fixed(t.measured)} | ${t.met === null ? 'not measured' : t.met ? 'met' : '**missed**'} |`);
  if (soak) {
    const warm = soak.curve.filter((p) => p.requests >= soak.requests / 10);
    out.push('');
    const quarter = (from, to) => soak.curve.filter((p) => p.requests > from * soak.requests && p.requests <= to * soak.requests);
    const mean = (xs) => xs.reduce((s, p) => s + p.rss_mb, 0) / xs.length;
    const drift = soak.rss_drift_mb ?? Math.round((mean(quarter(0.75, 1)) - mean(quarter(0.25, 0.5))) * 10) / 10;
    out.push(`Soak (\`npm run bench -- --soak\`, ${soak.generated_at.slice(0, 16).replace('T', ' ')} UTC, load average ${soak.machine.loadavg_before.join(' ')}): ${soak.requests.toLocaleString('en-US')} requests at ${soak.result.rps} req/s through regate (c), decision log to /dev/null. After the first 10 %, RSS stays between ${Math.min(...warm.map((p) => p.rss_mb))} and ${Math.max(...warm.map((p) => p.rss_mb))} MB (the GC sawtooth); drift from the second to the last quarter: **${drift >= 0 ? '+' : ''}${drift} MB**. Curve in \`results/soak.json\`, chart \`results/soak.svg\`.`);
  }
  return out.join('\n');
}

/** Replace the marked section of bench/README.md. */
export function writeReport(results, soak, readme = join(here, 'README.md')) {
  const text = readFileSync(readme, 'utf8');
  const start = text.indexOf('<!-- results:start -->');
  const end = text.indexOf('<!-- results:end -->');
  if (start === -1 || end === -1) throw new Error(`${readme} has no results markers`);
  writeFileSync(readme, `${text.slice(0, start)}<!-- results:start -->\n${renderReport(results, soak)}\n${text.slice(end)}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const results = JSON.parse(readFileSync(join(here, 'results', 'latest.json'), 'utf8'));
  const soakFile = join(here, 'results', 'soak.json');
  writeReport(results, existsSync(soakFile) ? JSON.parse(readFileSync(soakFile, 'utf8')) : null);
}
