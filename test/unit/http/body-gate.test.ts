import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { RequestTimeoutError } from '../../../src/errors.ts';
import { admitBody, awaitingContinue, closeBodyGate, openBodyGate, openStreamBodyGate, type BodyProgress } from '../../../src/http/body-gate.ts';
import { rawExchange } from '../../helpers/http.ts';

/** Generous against a loaded machine; the drip below is 5× faster than the idle limit. */
const IDLE_MS = 500;
const DEADLINE_MS = 1500;

let server: Server;
let url: string;
const seen: { url: string; gated: boolean; waitedForContinue: boolean }[] = [];

function onRequest(req: IncomingMessage, res: ServerResponse): void {
  openBodyGate(req, res, { body_idle_timeout_ms: IDLE_MS, request_timeout_ms: DEADLINE_MS });
  const waited = awaitingContinue(req);
  // Like the pipeline: decide first (here: after 100 ms), only then admit the body.
  setTimeout(() => {
    if (req.url === '/refuse') {
      res.writeHead(403, { connection: 'close' }).end('refused');
      closeBodyGate(req);
      return;
    }
    const signal = admitBody(req);
    seen.push({ url: req.url!, gated: signal !== undefined, waitedForContinue: waited });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      closeBodyGate(req);
      res.end(`got ${Buffer.concat(chunks).length}`);
    });
    signal?.addEventListener('abort', () => {
      const err = signal.reason as RequestTimeoutError;
      assert.ok(err instanceof RequestTimeoutError);
      res.writeHead(408, { connection: 'close' }).end(err.reason);
    });
  }, 100);
}

before(async () => {
  server = createServer(onRequest);
  server.on('checkContinue', onRequest);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.closeAllConnections();
  return new Promise<void>((r) => server.close(() => r()));
});

const post = (path: string, length: number, extra = ''): string => `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${length}\r\nConnection: close\r\n${extra}\r\n`;

describe('body gate (issue 9 points 5 and 6)', () => {
  it('a bodiless request has no gate', async () => {
    const x = await rawExchange(url, ['GET /none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    assert.equal(x.responses[0]?.body, 'got 0');
    assert.equal(seen.find((s) => s.url === '/none')?.gated, false);
  });

  it('100 Continue is sent only when the body is admitted, never before', async () => {
    const x = await rawExchange(url, [post('/expect', 3, 'Expect: 100-continue\r\n'), 400, 'abc'], 5_000);
    assert.deepEqual(x.interim, [100]);
    assert.equal(x.responses[0]?.body, 'got 3');
    assert.equal(seen.find((s) => s.url === '/expect')?.waitedForContinue, true);
  });

  it('a refusal before admission sends no 100 Continue', async () => {
    const x = await rawExchange(url, [post('/refuse', 3, 'Expect: 100-continue\r\n')]);
    assert.deepEqual(x.interim, []);
    assert.equal(x.responses[0]?.status, 403);
  });

  it('a body that stalls → body_timeout', async () => {
    const x = await rawExchange(url, [post('/stall', 10), 'ab'], 10_000);
    assert.equal(x.responses[0]?.status, 408);
    assert.equal(x.responses[0]?.body, 'body_timeout');
  });

  it('a body that keeps dripping → request_timeout at the deadline', async () => {
    const parts: (string | number)[] = [post('/drip', 100)];
    for (let i = 0; i < 100; i++) parts.push(100, 'x');
    const x = await rawExchange(url, parts, 15_000);
    assert.equal(x.responses[0]?.status, 408);
    assert.equal(x.responses[0]?.body, 'request_timeout');
  });

  it('a body that arrives in time is untouched', async () => {
    const x = await rawExchange(url, [post('/steady', 4), 100, 'ab', 100, 'cd'], 5_000);
    assert.equal(x.responses[0]?.body, 'got 4');
  });
});

describe('the body gate of an HTTP/2 stream (openStreamBodyGate)', () => {
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const progress = (): BodyProgress & { bytes: number; complete: boolean } => ({ bytes: 0, complete: false });

  it('the idle clock starts at admission; no progress then → body_timeout', async () => {
    const key = {};
    const p = progress();
    openStreamBodyGate(key, p, { body_idle_timeout_ms: 40, request_timeout_ms: 10_000 });
    await sleep(120);
    // Not admitted yet: nothing read the body, so its silence is not the client's.
    const signal = admitBody(key)!;
    assert.equal(signal.aborted, false);
    const reason = await new Promise<unknown>((resolve) => signal.addEventListener('abort', () => resolve(signal.reason), { once: true }));
    assert.ok(reason instanceof RequestTimeoutError);
    assert.equal(reason.reason, 'body_timeout');
  });

  it('progress keeps it open; the request deadline still ends it (request_timeout)', async () => {
    const key = {};
    const p = progress();
    openStreamBodyGate(key, p, { body_idle_timeout_ms: 60, request_timeout_ms: 250 });
    const signal = admitBody(key)!;
    const timer = setInterval(() => (p.bytes += 1), 10);
    try {
      const reason = await new Promise<unknown>((resolve) => signal.addEventListener('abort', () => resolve(signal.reason), { once: true }));
      assert.equal((reason as RequestTimeoutError).reason, 'request_timeout');
    } finally {
      clearInterval(timer);
    }
  });

  it('a complete body closes the gate: no timeout fires', async () => {
    const key = {};
    const p = progress();
    openStreamBodyGate(key, p, { body_idle_timeout_ms: 30, request_timeout_ms: 80 });
    const signal = admitBody(key)!;
    p.complete = true;
    await sleep(150);
    assert.equal(signal.aborted, false);
    closeBodyGate(key);
    assert.equal(admitBody(key), undefined);
  });
});
