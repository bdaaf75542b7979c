#!/usr/bin/env node
// A tiny metadata catalog for the pii-pipeline example: what regate asks before
// it lets a pipeline run start on a file (route `resource` in regate.yaml).
//
//   GET /files/{file}  -> 200 {"file", "tags", "owner", "format"}  or 404
//
// Usage: node catalog.mjs [port]   (default 7000; 0 picks a free port)
// Prints one JSON line with its URL once listening.
import http from 'node:http';

/** The catalog: file name -> metadata. Tags follow a `pii:<level>` convention. */
export const FILES = {
  'customers-2026-03.parquet': { tags: ['pii:high', 'finance'], owner: 'crm-team', format: 'parquet' },
  'support-tickets-2026-03.jsonl': { tags: ['pii:high'], owner: 'support-team', format: 'jsonl' },
  'web-logs-2026-03.jsonl': { tags: ['pii:low'], owner: 'web-team', format: 'jsonl' },
  'product-catalog.csv': { tags: [], owner: 'merch-team', format: 'csv' },
};

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function createCatalog(files = FILES) {
  return http.createServer((req, res) => {
    const m = /^\/files\/([^/?]+)$/.exec((req.url ?? '').split('?')[0]);
    if (req.method !== 'GET' || !m) return send(res, 404, { error: 'not found' });
    let name;
    try {
      name = decodeURIComponent(m[1]);
    } catch {
      return send(res, 400, { error: 'bad file name' });
    }
    const entry = Object.hasOwn(files, name) ? files[name] : undefined;
    if (!entry) return send(res, 404, { error: `no such file: ${name}` });
    send(res, 200, { file: name, ...entry });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const port = Number(process.argv[2] ?? process.env.PORT ?? 7000);
  const server = createCatalog();
  server.listen(port, process.env.HOST ?? '127.0.0.1', () => {
    console.log(JSON.stringify({ msg: 'catalog listening', url: `http://127.0.0.1:${server.address().port}` }));
  });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
}
