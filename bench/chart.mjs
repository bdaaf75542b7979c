#!/usr/bin/env node
// SVG charts for the benchmark results, written by hand (no chart library):
// three horizontal-bar panels — throughput, p99 latency, CPU per request —
// one bar per scenario, and a line chart for the soak's RSS curve.
//
//   node bench/chart.mjs [results/latest.json]   re-renders results/latest.svg (and soak.svg)
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const COLORS = { a: '#9e9e9e', b: '#607d8b', c: '#1e88e5', d: '#64b5f6', e: '#e53935', c2: '#0d47a1' };
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"';

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A "nice" axis maximum ≥ v: 1, 2 or 5 × 10^k. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (v >= 1000) return Math.round(v).toLocaleString('en-US');
  if (v >= 10) return String(Math.round(v));
  return String(Math.round(v * 100) / 100);
}

/** One panel: title, bars for `rows` ({key, label, value}), x axis to a nice max. */
function panel(x, y, w, title, unit, rows, labelW) {
  const barH = 22;
  const gap = 8;
  const max = niceMax(Math.max(...rows.map((r) => r.value ?? 0)));
  const plotW = w - labelW - 60;
  const parts = [`<text x="${x}" y="${y}" font-size="14" font-weight="600" ${FONT}>${esc(title)} <tspan font-weight="400" fill="#555">(${esc(unit)})</tspan></text>`];
  rows.forEach((r, i) => {
    const by = y + 14 + i * (barH + gap);
    const bw = r.value ? Math.max(1, (r.value / max) * plotW) : 0;
    parts.push(`<text x="${x + labelW - 8}" y="${by + barH / 2 + 4}" font-size="12" text-anchor="end" ${FONT}>${esc(r.label)}</text>`);
    parts.push(`<rect x="${x + labelW}" y="${by}" width="${bw.toFixed(1)}" height="${barH}" fill="${COLORS[r.key] ?? '#888'}" rx="2"/>`);
    parts.push(`<text x="${x + labelW + bw + 6}" y="${by + barH / 2 + 4}" font-size="12" ${FONT}>${esc(fmt(r.value))}</text>`);
  });
  const axisY = y + 14 + rows.length * (barH + gap);
  parts.push(`<line x1="${x + labelW}" y1="${axisY}" x2="${x + labelW + plotW}" y2="${axisY}" stroke="#bbb"/>`);
  for (const f of [0, 0.5, 1]) {
    const tx = x + labelW + f * plotW;
    parts.push(`<text x="${tx}" y="${axisY + 14}" font-size="10" fill="#777" text-anchor="middle" ${FONT}>${esc(fmt(f * max))}</text>`);
  }
  return { svg: parts.join('\n'), height: axisY + 20 - y };
}

/** The main chart: req/s, p99 latency, CPU per request, per scenario. */
export function renderChart(results) {
  const order = ['a', 'b', 'c', 'c2', 'd', 'e'].filter((k) => results.scenarios[k]);
  const label = (k) => `${k}  ${results.scenarios[k].label}`;
  const rows = (f) => order.map((k) => ({ key: k, label: label(k), value: f(results.scenarios[k]) }));
  const width = 760;
  const labelW = 300;
  const m = results.machine;
  let y = 30;
  const out = [];
  out.push(`<text x="20" y="${y}" font-size="16" font-weight="700" ${FONT}>regate benchmark — same load, ${results.method.connections} keep-alive connections</text>`);
  y += 18;
  out.push(`<text x="20" y="${y}" font-size="11" fill="#555" ${FONT}>${esc(`${m.nproc} × ${m.cpu_model}, node ${m.node}, opa ${m.opa}, ${results.generated_at.slice(0, 10)} · higher req/s is better, lower latency and CPU are better`)}</text>`);
  y += 30;
  for (const [title, unit, f] of [
    ['Throughput', 'req/s', (s) => s.rps],
    ['p99 latency at max throughput', 'ms', (s) => s.latency_us.p99 / 1000],
    ['CPU per request, processes under test', 'µs', (s) => s.cpu_us_per_request],
  ]) {
    const p = panel(20, y, width - 40, title, unit, rows(f), labelW);
    out.push(p.svg);
    y += p.height + 26;
  }
  for (const [h, what] of [[results.half_load, "half of b's max"], [results.half_load_of_c, "half of c's max"]]) {
    if (!h) continue;
    out.push(`<text x="20" y="${y}" font-size="12" ${FONT}>${esc(`At ${what} (${h.rate} req/s): p99 b ${fmt(h.b.latency_us.p99 / 1000)} ms, c ${fmt(h.c.latency_us.p99 / 1000)} ms → regate adds ${fmt(h.p99_added_ms)} ms at p99`)}</text>`);
    y += 20;
  }
  if (results.micro) {
    out.push(`<text x="20" y="${y}" font-size="12" ${FONT}>${esc(`One decision (input + wasm evaluation): median ${fmt(results.micro.total_us.p50)} µs`)}</text>`);
    y += 20;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" viewBox="0 0 ${width} ${y + 10}">\n<rect width="100%" height="100%" fill="#fff"/>\n${out.join('\n')}\n</svg>\n`;
}

/** RSS (MB) against requests served, for the soak run. */
export function renderSoakChart(soak) {
  const width = 760;
  const height = 300;
  const x0 = 70;
  const y0 = 50;
  const w = width - x0 - 30;
  const h = height - y0 - 50;
  const maxX = soak.requests;
  const maxY = niceMax(Math.max(120, ...soak.curve.map((p) => p.rss_mb)));
  const px = (r) => x0 + (r / maxX) * w;
  const py = (mb) => y0 + h - (mb / maxY) * h;
  const pts = soak.curve.map((p) => `${px(p.requests).toFixed(1)},${py(p.rss_mb).toFixed(1)}`).join(' ');
  const out = [
    `<text x="20" y="24" font-size="16" font-weight="700" ${FONT}>regate soak: RSS over ${esc(fmt(soak.requests))} requests</text>`,
    `<text x="20" y="40" font-size="11" fill="#555" ${FONT}>${esc(`${soak.result.rps} req/s, token reused, decision log written to /dev/null · dashed: 120 MB target`)}</text>`,
    `<line x1="${x0}" y1="${y0 + h}" x2="${x0 + w}" y2="${y0 + h}" stroke="#bbb"/>`,
    `<line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y0 + h}" stroke="#bbb"/>`,
    `<line x1="${x0}" y1="${py(120)}" x2="${x0 + w}" y2="${py(120)}" stroke="#e53935" stroke-dasharray="4 4"/>`,
    `<polyline points="${pts}" fill="none" stroke="#1e88e5" stroke-width="2"/>`,
  ];
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    out.push(`<text x="${px(f * maxX)}" y="${y0 + h + 16}" font-size="10" fill="#777" text-anchor="middle" ${FONT}>${esc(fmt(f * maxX))}</text>`);
    out.push(`<text x="${x0 - 6}" y="${py(f * maxY) + 4}" font-size="10" fill="#777" text-anchor="end" ${FONT}>${esc(fmt(f * maxY))} MB</text>`);
  }
  out.push(`<text x="${x0 + w / 2}" y="${height - 10}" font-size="11" text-anchor="middle" ${FONT}>requests served</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">\n<rect width="100%" height="100%" fill="#fff"/>\n${out.join('\n')}\n</svg>\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'results');
  const file = process.argv[2] ?? join(dir, 'latest.json');
  writeFileSync(join(dirname(file), 'latest.svg'), renderChart(JSON.parse(readFileSync(file, 'utf8'))));
  const soakFile = join(dirname(file), 'soak.json');
  if (existsSync(soakFile)) writeFileSync(join(dirname(file), 'soak.svg'), renderSoakChart(JSON.parse(readFileSync(soakFile, 'utf8'))));
}
