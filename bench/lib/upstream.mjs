#!/usr/bin/env node
// The benchmark's upstream: a node:http server that drains the request body and
// answers every request with the same small JSON document, the size of a
// sentiment prediction. Constant cost per request, so every scenario pays the
// same for it. Runs in its own process; prints `{"port":N}` once listening.
//
// Usage: node bench/lib/upstream.mjs
import http from 'node:http';

const BODY = Buffer.from(JSON.stringify({ model: 'sentiment', label: 'positive', score: 0.91, latency_ms: 0 }));
const HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) };

const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  // Answer once the body is fully read, as a real API would.
  req.on('end', () => {
    res.writeHead(200, HEADERS);
    res.end(BODY);
  });
  req.resume();
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
