import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MAX_PIPELINED, inOrder } from '../../../src/http/pipelining.ts';
import { rawExchange } from '../../helpers/http.ts';

let server: Server;
let url: string;
const started: string[] = [];
let running = 0;
let maxRunning = 0;

before(async () => {
  server = createServer((req, res) => {
    inOrder(req, res, async () => {
      started.push(req.url!);
      running++;
      maxRunning = Math.max(maxRunning, running);
      const q = new URL(req.url!, 'http://x').searchParams;
      await new Promise((r) => setTimeout(r, Number(q.get('delay') ?? 0)));
      // A barrier: wait (bounded) until another request has started.
      const other = q.get('wait');
      for (let i = 0; other !== null && !started.some((u) => u.startsWith(other)) && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
      running--;
      if (q.has('close')) res.setHeader('connection', 'close');
      res.end(req.url);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => new Promise<void>((r) => server.close(() => r())));

const get = (path: string, last = false): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n${last ? 'Connection: close\r\n' : ''}\r\n`;

describe('inOrder: one request at a time per connection', () => {
  it('handles pipelined requests strictly one after the other, in order', async () => {
    started.length = 0;
    maxRunning = 0;
    const x = await rawExchange(url, [get('/a?delay=60') + get('/b?delay=10') + get('/c', true)]);
    assert.deepEqual(x.responses.map((r) => r.body), ['/a?delay=60', '/b?delay=10', '/c']);
    assert.deepEqual(started, ['/a?delay=60', '/b?delay=10', '/c']);
    assert.equal(maxRunning, 1, 'never two at once on one connection');
  });

  it('after a response that closes the connection, nothing more is handled', async () => {
    started.length = 0;
    const x = await rawExchange(url, [get('/first?delay=30&close') + get('/second') + get('/third', true)]);
    assert.deepEqual(x.responses.map((r) => r.body), ['/first?delay=30&close']);
    assert.ok(x.closed);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(started, ['/first?delay=30&close']);
  });

  it(`more than ${MAX_PIPELINED} requests queued behind a slow one → disconnected, the queue never handled`, async () => {
    started.length = 0;
    let flood = get('/slow?delay=300');
    for (let i = 0; i < MAX_PIPELINED + 5; i++) flood += get(`/q${i}`);
    const x = await rawExchange(url, [flood]);
    assert.ok(x.closed);
    assert.deepEqual(started, ['/slow?delay=300']);
  });

  it('separate connections are independent', async () => {
    // Let the previous test's slow handler finish first.
    for (let i = 0; running > 0 && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
    started.length = 0;
    maxRunning = 0;
    // Each waits for the other to start: only possible if the two connections run side by side.
    await Promise.all([rawExchange(url, [get('/x?wait=/y', true)]), rawExchange(url, [get('/y?wait=/x', true)])]);
    assert.equal(maxRunning, 2);
  });
});
