#!/usr/bin/env node
// Scenario (b): the practical ceiling. A pass-through reverse proxy on regate's
// own stack — node:http server, one undici Pool, a dispatch handler writing
// straight into the ServerResponse (as src/upstream/forward.ts does) — with no
// authentication, no policy, no logs and no metrics. Whatever regate costs on
// top of this is the price of enforcement.
//
// With `--tls <cert> <key>`: the same proxy behind node's https server (HTTP/1.1),
// the ceiling of regate over TLS.
//
// Usage: node bench/lib/bare-proxy.mjs <upstream-origin> [--tls cert.pem key.pem]   prints {"port":N}
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Pool } from 'undici';
import { forwardTo } from './forward.mjs';

const origin = process.argv[2];
if (!origin) throw new Error('usage: bare-proxy.mjs <upstream-origin>');
const pool = new Pool(origin, { connections: 128, pipelining: 1, keepAliveTimeout: 4000 });

const onRequest = (req, res) => {
  forwardTo(pool, req, res, upstreamHeaders(req));
};
const tlsAt = process.argv.indexOf('--tls');
const server =
  tlsAt === -1
    ? http.createServer({ keepAliveTimeout: 65_000 }, onRequest)
    : https.createServer({ keepAliveTimeout: 65_000, cert: readFileSync(process.argv[tlsAt + 1]), key: readFileSync(process.argv[tlsAt + 2]), ALPNProtocols: ['http/1.1'] }, onRequest);

/** Client headers minus hop-by-hop and Host (undici sets the upstream's). */
function upstreamHeaders(req) {
  const out = {};
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (name === 'host' || name === 'connection' || name === 'keep-alive' || name === 'transfer-encoding') continue;
    out[name] = raw[i + 1];
  }
  return out;
}

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void pool.close().finally(() => process.exit(0));
});
