#!/usr/bin/env node
// Scenario (e): what users build when they do not use regate. The bare proxy of
// scenario (b) plus the same JWT verification (jose `jwtVerify` against the
// same JWKS, issuer, audience, algorithm and required claims as regate's
// config), asking an `opa run --server` sidecar over localhost REST for every
// decision (POST /v1/data/regate/authz/decision, keep-alive) with an input of
// the same shape as regate's, then forwarding or answering 403.
//
// Tokens are verified on every request, as a hand-written proxy typically
// does: compare it with regate's distinct-token scenario (d) for the
// verification-bound case.
//
// Usage: node bench/lib/opa-proxy.mjs <upstream-origin> <opa-origin> <jwks-file>   prints {"port":N}
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { Pool } from 'undici';
import { forwardTo } from './forward.mjs';

const [upstreamOrigin, opaOrigin, jwksFile] = process.argv.slice(2);
if (!jwksFile) throw new Error('usage: opa-proxy.mjs <upstream-origin> <opa-origin> <jwks-file>');

const upstream = new Pool(upstreamOrigin, { connections: 128, pipelining: 1, keepAliveTimeout: 4000 });
const opa = new Pool(opaOrigin, { connections: 128, pipelining: 1, keepAliveTimeout: 4000 });
const keys = createLocalJWKSet(JSON.parse(readFileSync(jwksFile, 'utf8')));
const VERIFY = {
  algorithms: ['ES256'],
  issuer: 'https://issuer.quickstart.regate.dev',
  audience: ['sentiment-api'],
  clockTolerance: 30,
  requiredClaims: ['exp', 'sub'],
};
const PREDICT = /^\/v1\/models\/([^/?]+)\/predict(?:\?|$)/;
const DECISION_PATH = '/v1/data/regate/authz/decision';
const OPA_HEADERS = { 'content-type': 'application/json' };

function deny(res, status, reason) {
  const body = JSON.stringify({ status, reason });
  res.writeHead(status, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function handle(req, res) {
  const m = PREDICT.exec(req.url ?? '');
  if (m === null || req.method !== 'POST') return deny(res, 404, 'route_not_found');
  const auth = req.headers.authorization;
  if (auth === undefined || !auth.startsWith('Bearer ')) return deny(res, 401, 'missing_token');
  let payload;
  try {
    ({ payload } = await jwtVerify(auth.slice(7), keys, VERIFY));
  } catch {
    return deny(res, 401, 'invalid_token');
  }
  const headers = {};
  for (const name in req.headers) if (name !== 'authorization' && name !== 'connection') headers[name] = req.headers[name];
  const nowMs = Date.now();
  const id = randomUUID();
  const input = {
    request: { id, method: req.method, path: req.url, params: { model: m[1] }, query: {}, headers, host: req.headers.host, remote_addr: req.socket.remoteAddress },
    route: { id: 'predict', attributes: { sensitivity: 'low' } },
    subject: {
      authenticated: true,
      sub: payload.sub,
      iss: payload.iss,
      roles: payload.realm_access?.roles ?? [],
      groups: [],
      scopes: [],
      tenant: '',
    },
    token: payload,
    time: { now_ns: nowMs * 1e6, rfc3339: new Date(nowMs).toISOString(), timezone: 'UTC' },
  };
  let decision;
  try {
    const r = await opa.request({ path: DECISION_PATH, method: 'POST', headers: OPA_HEADERS, body: JSON.stringify({ input }) });
    decision = (await r.body.json()).result;
  } catch {
    return deny(res, 500, 'policy_unavailable');
  }
  if (decision?.allow !== true) return deny(res, 403, 'policy_denied');
  const out = {};
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (name === 'host' || name === 'connection' || name === 'keep-alive' || name === 'authorization' || name === 'transfer-encoding') continue;
    out[name] = raw[i + 1];
  }
  out['x-request-id'] = id;
  out['x-regate-sub'] = String(payload.sub);
  out['x-regate-roles'] = input.subject.roles.join(',');
  forwardTo(upstream, req, res, out);
}

const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  handle(req, res).catch(() => {
    if (!res.headersSent) deny(res, 500, 'internal_error');
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void Promise.allSettled([upstream.close(), opa.close()]).finally(() => process.exit(0));
});
