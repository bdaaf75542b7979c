#!/usr/bin/env node
// The load generator: a separate process with a fixed number of keep-alive
// connections (one undici Client each, no pipelining), so its CPU is its own
// and is reported. Why not autocannon: it is one more dependency tree, and we
// need two things it does not do the way we want — a distinct bearer token per
// request from a pre-minted pool, and start/end markers so the orchestrator
// samples the proxy's /proc counters exactly over the measured window.
//
// Modes:
// - closed loop (no `rate`): each connection sends its next request as soon as
//   the previous response ended — maximum throughput at fixed concurrency;
// - open loop (`rate` req/s): requests are scheduled at a constant rate spread
//   over the connections. Latency is measured from the send, except when a
//   connection was still busy at its scheduled time: then from the schedule
//   (no coordinated omission — a stall shows up in the tail).
//
// Protocols (`protocol`): `http1` (default; https:// origins verified with `ca`),
// `h2` (node:http2 over TLS negotiated by ALPN, or h2c for http://: `connections`
// concurrent streams spread over `sessions` HTTP/2 connections — wrk does not speak
// HTTP/2), `grpc` (@grpc/grpc-js unary ModelInfer calls on one channel, `connections`
// calls in flight; a call that ends with status OK counts as 200).
//
// Input: path of a JSON file (see `Options` below). Output on stdout, one JSON
// object per line: {"event":"start"} when the measured window opens, then
// {"event":"end", ...result}. Exits 0.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import http2 from 'node:http2';
import { Client } from 'undici';

/**
 * @typedef {object} Options
 * @property {string} origin            http://127.0.0.1:port
 * @property {string} method
 * @property {string} path
 * @property {string} [body]
 * @property {Record<string,string>} [headers]
 * @property {string[]} [tokens]        bearer tokens
 * @property {'reuse'|'distinct'} [tokenMode]  reuse: connection i always sends tokens[i % n]; distinct: a new token from the pool on every request, in order
 * @property {number} connections
 * @property {number} warmupMs
 * @property {number} durationMs
 * @property {number} [rate]            total req/s (open loop); absent = closed loop
 * @property {number} [requests]        stop after this many measured requests instead of durationMs (soak)
 * @property {number} [progressEvery]   emit {"event":"progress","requests":n} every n measured requests
 * @property {'http1'|'h2'|'grpc'} [protocol]  default http1
 * @property {string} [ca]              PEM file verifying an https:// origin (servername localhost)
 * @property {number} [sessions]        h2: HTTP/2 connections the streams are spread over (default 4)
 * @property {string} [proto]           grpc: the .proto file of inference.GRPCInferenceService
 * @property {string} [authority]       grpc / h2: the :authority to send
 */

/** @type {Options} */
const o = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const tokens = o.tokens ?? [];
const bodyBuf = o.body === undefined ? null : Buffer.from(o.body);
const baseHeaders = { ...(o.headers ?? {}) };
if (bodyBuf) baseHeaders['content-length'] = String(bodyBuf.length);

// Latencies of the measured window, µs, in a growable typed array.
let lat = new Float64Array(1 << 16);
let n = 0;
function record(us) {
  if (n === lat.length) {
    const next = new Float64Array(lat.length * 2);
    next.set(lat);
    lat = next;
  }
  lat[n++] = us;
}

let phase = 'warmup'; // warmup → measure → done
let measured = 0;
let errors = 0;
const statuses = {};
let nextToken = 0;
let cpuStart;
let tStart = 0;
let tEnd = 0;

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

// Header objects built once per token (a reused token is one per connection): the generator's
// own per-request work stays small, so its CPU competes as little as possible with the proxy's.
const headersByToken = new Map();
function headersFor(token) {
  if (token === undefined) return baseHeaders;
  let h = headersByToken.get(token);
  if (h === undefined) {
    h = { ...baseHeaders, authorization: `Bearer ${token}` };
    // Distinct tokens are used once: do not keep 50,000 header objects.
    if (o.tokenMode !== 'distinct') headersByToken.set(token, h);
  }
  return h;
}

/** One request on one connection; resolves with the status (0 for a transport error). */
function send(client, token) {
  if (protocol === 'h2') return sendH2(client, token);
  if (protocol === 'grpc') return sendGrpc(client, token);
  return new Promise((resolve) => {
    const headers = headersFor(token);
    let status = 0;
    client.dispatch(
      { path: o.path, method: o.method, headers, body: bodyBuf },
      {
        onRequestStart() {},
        onResponseStart(_c, statusCode) {
          status = statusCode;
        },
        onResponseData() {},
        onResponseEnd() {
          resolve(status);
        },
        onResponseError() {
          resolve(0);
        },
      },
    );
  });
}

const h2Headers = new Map();
function sendH2(session, token) {
  return new Promise((resolve) => {
    let h = h2Headers.get(token);
    if (h === undefined) {
      const { 'content-length': _cl, ...rest } = headersFor(token);
      h = { ...rest, ':method': o.method, ':path': o.path, ...(o.authority ? { ':authority': o.authority } : {}) };
      if (o.tokenMode !== 'distinct') h2Headers.set(token, h);
    }
    let status = 0;
    let stream;
    try {
      stream = session.request(h, { endStream: bodyBuf === null });
    } catch {
      resolve(0);
      return;
    }
    if (bodyBuf !== null) stream.end(bodyBuf);
    stream.on('response', (r) => (status = Number(r[':status'])));
    stream.on('data', () => {});
    stream.on('end', () => resolve(status));
    stream.on('error', () => resolve(0));
  });
}

let grpc = null;
let grpcMeta = new Map();
function sendGrpc(client, token) {
  return new Promise((resolve) => {
    let md = grpcMeta.get(token);
    if (md === undefined) {
      md = new grpc.Metadata();
      if (token !== undefined) md.set('authorization', `Bearer ${token}`);
      if (o.tokenMode !== 'distinct') grpcMeta.set(token, md);
    }
    client.ModelInfer(GRPC_REQUEST, md, (err) => resolve(err ? 0 : 200));
  });
}
const GRPC_REQUEST = { model_name: 'sentiment', id: 'bench', inputs: [{ name: 'text', datatype: 'FP32', shape: [4], fp32_contents: [0.1, 0.2, 0.3, 0.4] }] };

function tokenFor(conn) {
  if (tokens.length === 0) return undefined;
  if (o.tokenMode === 'distinct') return tokens[nextToken++ % tokens.length];
  return tokens[conn % tokens.length];
}

function count(status, us) {
  if (phase !== 'measure') return;
  statuses[status] = (statuses[status] ?? 0) + 1;
  if (status === 0) errors++;
  record(us);
  measured++;
  if (o.progressEvery && measured % o.progressEvery === 0) emit({ event: 'progress', requests: measured, t: performance.now() - tStart });
  if (o.requests && measured >= o.requests) finishMeasure();
}

async function closedLoop(client, conn) {
  while (phase !== 'done') {
    const t0 = performance.now();
    const status = await send(client, tokenFor(conn));
    count(status, (performance.now() - t0) * 1000);
  }
}

async function openLoop(client, conn) {
  const interval = (1000 * o.connections) / o.rate;
  let scheduled = performance.now() + (interval * conn) / o.connections;
  while (phase !== 'done') {
    const now = performance.now();
    let origin;
    if (now < scheduled) {
      await new Promise((r) => setTimeout(r, scheduled - now));
      origin = performance.now();
    } else {
      // Busy past the schedule: the request is late because of the system under test.
      origin = scheduled;
    }
    if (phase === 'done') break;
    const status = await send(client, tokenFor(conn));
    count(status, (performance.now() - origin) * 1000);
    scheduled += interval;
  }
}

function startMeasure() {
  if (phase !== 'warmup') return;
  phase = 'measure';
  cpuStart = process.cpuUsage();
  tStart = performance.now();
  emit({ event: 'start' });
  if (!o.requests) setTimeout(finishMeasure, o.durationMs);
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function finishMeasure() {
  if (phase !== 'measure') return;
  tEnd = performance.now();
  phase = 'done';
  const cpu = process.cpuUsage(cpuStart);
  const seconds = (tEnd - tStart) / 1000;
  const sorted = lat.subarray(0, n).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i];
  const ok = statuses[200] ?? 0;
  const round = (x) => (x === null ? null : Math.round(x * 10) / 10);
  emit({
    event: 'end',
    requests: measured,
    ok,
    errors,
    statuses,
    seconds,
    rps: measured / seconds,
    latency_us: {
      mean: round(n ? sum / n : null),
      p50: round(percentile(sorted, 50)),
      p90: round(percentile(sorted, 90)),
      p99: round(percentile(sorted, 99)),
      p999: round(percentile(sorted, 99.9)),
      max: round(n ? sorted[n - 1] : null),
    },
    loadgen_cpu_us: cpu.user + cpu.system,
    loadgen_cpu_us_per_request: measured ? (cpu.user + cpu.system) / measured : null,
  });
}

const protocol = o.protocol ?? 'http1';
const ca = o.ca === undefined ? undefined : readFileSync(o.ca);
/** What each loop sends on: an undici Client, an HTTP/2 session, or the gRPC client. */
const clients = [];
let closeAll = async () => {};
if (protocol === 'h2') {
  const sessions = [];
  for (let i = 0; i < (o.sessions ?? 4); i++) {
    const s = http2.connect(o.origin, { ...(ca ? { ca, servername: 'localhost' } : {}), settings: { enablePush: false } });
    s.on('error', () => {});
    sessions.push(s);
  }
  for (let i = 0; i < o.connections; i++) clients.push(sessions[i % sessions.length]);
  closeAll = async () => sessions.forEach((s) => s.close());
} else if (protocol === 'grpc') {
  grpc = await import('@grpc/grpc-js');
  const protoLoader = await import('@grpc/proto-loader');
  const def = protoLoader.loadSync(o.proto, { keepCase: true, longs: Number, defaults: true });
  const Client = grpc.loadPackageDefinition(def).inference.GRPCInferenceService;
  const target = new URL(o.origin).host;
  const creds = ca ? grpc.credentials.createSsl(ca) : grpc.credentials.createInsecure();
  const client = new Client(target, creds, { ...(ca ? { 'grpc.ssl_target_name_override': 'localhost' } : {}), ...(o.authority ? { 'grpc.default_authority': o.authority } : {}) });
  for (let i = 0; i < o.connections; i++) clients.push(client);
  closeAll = async () => client.close();
} else {
  for (let i = 0; i < o.connections; i++) clients.push(new Client(o.origin, { pipelining: 1, keepAliveTimeout: 60_000, ...(ca ? { connect: { ca, servername: 'localhost' } } : {}) }));
  closeAll = () => Promise.allSettled(clients.map((c) => c.close()));
}
const loops = clients.map((c, i) => (o.rate ? openLoop(c, i) : closedLoop(c, i)));
setTimeout(startMeasure, o.warmupMs);
await Promise.all(loops);
await closeAll();
process.exit(0);
