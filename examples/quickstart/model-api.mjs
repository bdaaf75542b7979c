#!/usr/bin/env node
// A tiny sentiment-analysis "model API" for the quickstart: the upstream regate protects.
// It trusts the network (that is regate's job) and echoes the identity headers regate injects,
// so you can see what reached it.
//
//   POST /v1/models/{model}/predict   {"text": "..."} -> {"label", "score"}
//   GET  /v1/models/{model}/metadata  -> model card
//   GET  /v1/models/{model}/logs      -> recent predictions; with Accept: text/event-stream,
//                                        streams them as Server-Sent Events
//
// Usage: node model-api.mjs [port]   (default 8000; 0 picks a free port and prints it)
import http from 'node:http';

const POSITIVE = new Set(['good', 'great', 'love', 'excellent', 'happy', 'fast', 'helpful', 'nice', 'wonderful']);
const NEGATIVE = new Set(['bad', 'terrible', 'hate', 'awful', 'slow', 'broken', 'sad', 'useless', 'poor']);
const MAX_BODY = 64 * 1024;
const log = [];

function predict(text) {
  let score = 0;
  for (const word of text.toLowerCase().match(/[a-z']+/g) ?? []) {
    if (POSITIVE.has(word)) score += 1;
    if (NEGATIVE.has(word)) score -= 1;
  }
  const label = score > 0 ? 'positive' : score < 0 ? 'negative' : 'neutral';
  const confidence = Math.min(0.99, 0.5 + Math.abs(score) * 0.2);
  return { label, score: Number(confidence.toFixed(2)) };
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function identity(req) {
  return { sub: req.headers['x-regate-sub'] ?? null, roles: req.headers['x-regate-roles'] ?? null };
}

export function createModelApi() {
  return http.createServer((req, res) => {
    const m = /^\/v1\/models\/([^/]+)\/(predict|metadata|logs)$/.exec((req.url ?? '').split('?')[0]);
    if (!m) return send(res, 404, { error: 'not found' });
    const [, model, action] = m;
    if (action === 'predict' && req.method === 'POST') {
      let size = 0;
      const chunks = [];
      req.on('data', (c) => {
        size += c.length;
        if (size > MAX_BODY) req.destroy();
        else chunks.push(c);
      });
      req.on('end', () => {
        let text;
        try {
          text = JSON.parse(Buffer.concat(chunks).toString('utf8')).text;
        } catch {
          return send(res, 400, { error: 'body must be JSON: {"text": "..."}' });
        }
        if (typeof text !== 'string') return send(res, 400, { error: '"text" must be a string' });
        const result = { model, ...predict(text) };
        log.push({ at: new Date().toISOString(), caller: identity(req).sub, ...result });
        if (log.length > 100) log.shift();
        send(res, 200, { ...result, seen_by_model_api: identity(req) });
      });
      return;
    }
    if (action === 'metadata' && req.method === 'GET') {
      return send(res, 200, {
        model,
        task: 'sentiment-analysis',
        labels: ['negative', 'neutral', 'positive'],
        version: '1.0.0',
        owner: 'ml-platform',
        seen_by_model_api: identity(req),
      });
    }
    if (action === 'logs' && req.method === 'GET') {
      if ((req.headers.accept ?? '').includes('text/event-stream')) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        let i = 0;
        const entries = log.length ? log.slice(-5) : [{ note: 'no predictions yet' }];
        const timer = setInterval(() => {
          if (i >= entries.length) {
            clearInterval(timer);
            res.end('event: end\ndata: {}\n\n');
            return;
          }
          res.write(`id: ${i}\ndata: ${JSON.stringify(entries[i++])}\n\n`);
        }, 100);
        res.on('close', () => clearInterval(timer));
        return;
      }
      return send(res, 200, { model, entries: log.slice(-20) });
    }
    res.setHeader('allow', action === 'predict' ? 'POST' : 'GET');
    send(res, 405, { error: 'method not allowed' });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const port = Number(process.argv[2] ?? process.env.PORT ?? 8000);
  const server = createModelApi();
  const host = process.env.HOST ?? '127.0.0.1';
  // One line and exit 1 (not a stack trace) when the port is taken: scripts/quickstart.sh reads it.
  server.once('error', (err) => {
    console.log(JSON.stringify({ msg: 'model API cannot listen', host, port, code: err.code, error: err.message }));
    process.exit(1);
  });
  server.listen(port, host, () => {
    const addr = server.address();
    console.log(JSON.stringify({ msg: 'model API listening', url: `http://127.0.0.1:${addr.port}`, pid: process.pid }));
  });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
}
