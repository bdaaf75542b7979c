/**
 * Real forwarding: client → tiny node:http front server calling forward() →
 * real node:http upstream (test/helpers/upstream-server.ts). Loopback only,
 * no mocks; assertions are about order and causality, never speed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { errors as undiciErrors } from 'undici';
import type { RouteConfig, UpstreamConfig } from '../../../src/config/types.ts';
import { RegateError, UpstreamError } from '../../../src/errors.ts';
import { buildUpstreamHeaders, compileHeaderPolicy } from '../../../src/upstream/headers.ts';
import { createUpstream, toUpstreamError, type ForwardResult, type Upstream } from '../../../src/upstream/forward.ts';
import { patternBytes, patternSha256, startUpstreamServer, type EchoBody, type TestUpstream } from '../../helpers/upstream-server.ts';

const MiB = 1 << 20;

function upstreamConfig(url: string, timeouts: Partial<UpstreamConfig['timeouts']> = {}): UpstreamConfig {
  return {
    id: 'up',
    url,
    protocol: 'http1',
    timeouts: { connect_ms: 2000, headers_ms: 30_000, body_ms: 300_000, ...timeouts },
    pool: { connections: 8, keepalive_timeout_ms: 4000 },
    request_headers_to_remove: [],
  };
}

const routeConfig: RouteConfig = {
  id: 'r1',
  match: { methods: ['GET'], path: '/x' },
  upstream: 'up',
  auth: 'required',
  attributes: {},
  identity_headers: { 'X-Regate-Sub': 'subject.sub' },
  forward_authorization: false,
  grpc: false,
  expose_reasons: false,
  websocket: false,
  dry_run: false,
};
const headerPolicy = compileHeaderPolicy(routeConfig);

/** What the front server saw for one request: a result, or the error it answered with. */
type Outcome = { result: ForwardResult } | { error: unknown };

interface Front {
  readonly url: string;
  readonly port: number;
  /** Next settled forward() (resolved or rejected). */
  nextOutcome(): Promise<Outcome>;
  /** Policy response headers for the next requests. */
  responseHeaders: Record<string, string> | undefined;
  close(): Promise<void>;
}

/**
 * The pipeline's forwarding step in miniature: scrub headers, forward, and on
 * a typed error answer a plain-text problem (status + reason) or cut the
 * connection if the response already started.
 */
async function startFront(upstream: Upstream, options: { bufferBody?: boolean } = {}): Promise<Front> {
  const outcomes: Outcome[] = [];
  const waiters: ((o: Outcome) => void)[] = [];
  const push = (o: Outcome): void => {
    const w = waiters.shift();
    if (w) w(o);
    else outcomes.push(o);
  };
  const front: Front = {
    url: '',
    port: 0,
    responseHeaders: undefined,
    nextOutcome: () => (outcomes.length ? Promise.resolve(outcomes.shift()!) : new Promise((r) => waiters.push(r))),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const fail = (res: import('node:http').ServerResponse, err: unknown): void => {
    push({ error: err });
    if (res.headersSent) return void res.destroy();
    const status = err instanceof RegateError ? err.status : 500;
    const reason = err instanceof RegateError ? err.reason : 'internal_error';
    res.writeHead(status, { 'content-type': 'text/plain' }).end(reason);
  };
  const server: Server = createServer((req, res) => {
    let headers;
    try {
      headers = buildUpstreamHeaders(req, {
        policy: headerPolicy,
        identityValues: { 'X-Regate-Sub': 'alice' },
        decisionHeaders: {},
        requestId: 'req-1',
        clientIp: req.socket.remoteAddress ?? '',
        proto: 'http',
        host: req.headers.host ?? '',
        forwardAuthorization: false,
      });
    } catch (err) {
      return fail(res, err);
    }
    const go = (body: Buffer | undefined): void => {
      upstream
        .forward(req, res, { method: req.method ?? 'GET', path: req.url ?? '/', headers, body, responseHeaders: front.responseHeaders })
        .then((result) => push({ result }), (err: unknown) => fail(res, err));
    };
    if (!options.bufferBody) return go(undefined);
    // Like a route whose policy reads the body: the pipeline buffers it and hands it over.
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => go(Buffer.concat(chunks)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  Object.assign(front, { port, url: `http://127.0.0.1:${port}` });
  return front;
}

interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One request with node:http; `body` may be a Buffer or a function that writes it (pacing). */
function send(
  url: string,
  opts: { method?: string; headers?: Record<string, string | string[]>; body?: Buffer | ((req: import('node:http').ClientRequest) => Promise<void>); agent?: Agent } = {},
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (typeof opts.body === 'function') opts.body(req).catch(reject);
    else req.end(opts.body);
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_r, reject) => {
      timer = setTimeout(() => reject(new assert.AssertionError({ message: `timed out waiting: ${what}` })), ms);
    }),
  ]);
}

function echoOf(r: Response): EchoBody {
  return JSON.parse(r.body.toString('utf8')) as EchoBody;
}

function expectResult(o: Outcome): ForwardResult {
  assert.ok('result' in o, `forward rejected: ${'error' in o ? String(o.error) : ''}`);
  return o.result;
}

function expectError(o: Outcome): UpstreamError {
  assert.ok('error' in o, 'forward resolved; expected a rejection');
  assert.ok(o.error instanceof UpstreamError, `not an UpstreamError: ${String(o.error)}`);
  return o.error;
}


/**
 * A test upstream, an `Upstream` over it and a front server, started before the
 * enclosing describe's tests and closed after them. Read the fields in tests
 * (they are set by the `before` hook).
 */
function withFront(timeouts: Partial<UpstreamConfig['timeouts']> = {}): { up: TestUpstream; upstream: Upstream; front: Front } {
  const rig = {} as { up: TestUpstream; upstream: Upstream; front: Front };
  before(async () => {
    rig.up = await startUpstreamServer();
    rig.upstream = createUpstream(upstreamConfig(rig.up.url, timeouts));
    rig.front = await startFront(rig.upstream);
  });
  after(async () => {
    await rig.front.close();
    await rig.upstream.close();
    await rig.up.close();
  });
  return rig;
}

describe('forward: requests and responses through a real front server', () => {
  const rig = withFront();

  it('forwards method, path and query verbatim with scrubbed headers', async () => {
    const r = await send(`${rig.front.url}/v1/models/a%2Fb/predict?x=1&x=2&mode=echo`, {
      headers: {
        'x-forwarded-for': '10.9.9.9',
        x_regate_sub: 'mallory',
        connection: 'keep-alive, x-hop',
        'x-hop': '1',
        authorization: 'Bearer secret',
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
        'x-multi': ['a', 'b'],
      },
    });
    assert.equal(r.status, 200);
    const echo = echoOf(r);
    assert.equal(echo.method, 'GET');
    assert.equal(echo.url, '/v1/models/a%2Fb/predict?x=1&x=2&mode=echo');
    assert.equal(echo.headers.host, `127.0.0.1:${rig.up.port}`);
    assert.equal(echo.headers['x-forwarded-host'], `127.0.0.1:${rig.front.port}`);
    assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(echo.headers['x-forwarded-proto'], 'http');
    assert.equal(echo.headers['x-request-id'], 'req-1');
    assert.equal(echo.headers['x-regate-sub'], 'alice');
    assert.equal(echo.headers['x_regate_sub'], undefined);
    assert.equal(echo.headers['x-hop'], undefined);
    assert.equal(echo.headers.authorization, undefined);
    assert.equal(echo.headers.traceparent, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    // Joined into one field, as node joined it for the policy input (issue 9).
    const multi = echo.rawHeaders.filter((_v, i, a) => i % 2 === 1 && a[i - 1]!.toLowerCase() === 'x-multi');
    assert.deepEqual(multi, ['a, b']);
    const result = expectResult(await rig.front.nextOutcome());
    assert.equal(result.status, 200);
    assert.equal(result.aborted, false);
    assert.equal(result.bytesOut, r.body.length);
    assert.ok(result.upstreamNs > 0);
  });

  it('streams a 20 MiB request body: the upstream receives bytes before the client has sent them all', async () => {
    const total = 20 * MiB;
    const half = total / 2;
    const sent = createHash('sha256');
    const r = await send(`${rig.front.url}/upload`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(total) },
      body: async (req) => {
        for (let off = 0; off < half; off += MiB) {
          const c = patternBytes(MiB, off);
          sent.update(c);
          if (!req.write(c)) await once(req, 'drain');
        }
        // Causal check: with the second half still unsent, the upstream must already be receiving.
        const rec = await withTimeout(rig.up.waitForRequest('/upload'), 5000, 'upstream request');
        await withTimeout(rec.bodyStarted, 5000, 'upstream to receive body bytes before the client finished');
        assert.ok(rec.bodyBytes > 0 && rec.bodyBytes <= half);
        for (let off = half; off < total; off += MiB) {
          const c = patternBytes(MiB, off);
          sent.update(c);
          if (!req.write(c)) await once(req, 'drain');
        }
        req.end();
      },
    });
    assert.equal(r.status, 200);
    const echo = echoOf(r);
    assert.equal(echo.bodyBytes, total);
    assert.equal(echo.bodySha256, sent.digest('hex'));
    assert.equal(echo.headers['content-length'], String(total));
    expectResult(await rig.front.nextOutcome());
  });

  it('streams a chunked request body (no Content-Length) as chunked', async () => {
    const r = await send(`${rig.front.url}/chunked`, {
      method: 'POST',
      body: async (req) => {
        req.write('hello ');
        // End only once the upstream has the first bytes: a body that had fully arrived before the
        // dispatch would be sent with its (then known) Content-Length by undici, on a loaded machine.
        const seen = await rig.up.waitForRequest('/chunked');
        await seen.bodyStarted;
        req.end('world');
      },
    });
    const echo = echoOf(r);
    assert.equal(echo.body, 'hello world');
    assert.equal(echo.headers['transfer-encoding'], 'chunked');
    expectResult(await rig.front.nextOutcome());
  });

  it('streams a 20 MiB response to a slow reader intact (backpressure)', async () => {
    const total = 20 * MiB;
    const hash = createHash('sha256');
    let bytes = 0;
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${rig.front.url}/big?mode=big&bytes=${total}`, { agent: false }, (res) => {
        assert.equal(res.headers['content-length'], String(total));
        res.on('data', (c: Buffer) => {
          hash.update(c);
          bytes += c.length;
          // Stall once, early, long enough for every buffer on the way to fill up.
          if (bytes - c.length < MiB && bytes >= MiB) {
            res.pause();
            setTimeout(() => res.resume(), 150);
          }
        });
        res.on('end', resolve);
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(bytes, total);
    assert.equal(hash.digest('hex'), patternSha256(total));
    const result = expectResult(await rig.front.nextOutcome());
    assert.equal(result.bytesOut, total);
  });

  it('relays Server-Sent Events one by one, as they are produced', async () => {
    const events = 4;
    const arrivals: { i: number; at: number }[] = [];
    let headersAt = 0;
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${rig.front.url}/sse?mode=sse&events=${events}&interval=120`, { agent: false }, (res) => {
        headersAt = performance.now();
        assert.equal(res.headers['content-type'], 'text/event-stream');
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          let end: number;
          while ((end = buf.indexOf('\n\n')) !== -1) {
            const m = /data: \{"i":(\d+)\}/.exec(buf.slice(0, end));
            if (m) arrivals.push({ i: Number(m[1]), at: performance.now() });
            buf = buf.slice(end + 2);
          }
        });
        res.on('end', resolve);
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    const rec = await rig.up.waitForRequest('/sse');
    assert.equal(rec.sentAt.length, events);
    assert.deepEqual(
      arrivals.map((a) => a.i),
      [0, 1, 2, 3],
    );
    // The stream is visibly open before the first event exists.
    assert.ok(headersAt < rec.sentAt[0]!, 'response headers reached the client before the first event was sent');
    // Event i reached the client before the upstream even produced event i+1: no buffering on the way.
    for (let i = 0; i + 1 < events; i++) {
      assert.ok(arrivals[i]!.at < rec.sentAt[i + 1]!, `event ${i} arrived only after event ${i + 1} was sent`);
    }
    expectResult(await rig.front.nextOutcome());
  });

  it('relays 204 and 304 without a body and keeps the connection usable', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const r204 = await send(`${rig.front.url}/s?mode=status&code=204`, { agent });
      assert.equal(r204.status, 204);
      assert.equal(r204.body.length, 0);
      const r304 = await send(`${rig.front.url}/s?mode=status&code=304`, { agent, headers: { 'if-none-match': '"v1"' } });
      assert.equal(r304.status, 304);
      assert.equal(r304.headers.etag, '"v1"');
      assert.equal(r304.body.length, 0);
      // Same client connection, next request still framed correctly.
      const next = await send(`${rig.front.url}/after`, { agent });
      assert.equal(echoOf(next).url, '/after');
      for (let i = 0; i < 3; i++) expectResult(await rig.front.nextOutcome());
    } finally {
      agent.destroy();
    }
  });

  it('relays HEAD: headers including Content-Length, no body', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const r = await send(`${rig.front.url}/h`, { method: 'HEAD', agent });
      assert.equal(r.status, 200);
      assert.ok(Number(r.headers['content-length']) > 0);
      assert.equal(r.body.length, 0);
      const next = await send(`${rig.front.url}/after-head`, { agent });
      assert.equal(echoOf(next).url, '/after-head');
      expectResult(await rig.front.nextOutcome());
      expectResult(await rig.front.nextOutcome());
    } finally {
      agent.destroy();
    }
  });

  it('does not relay 103 Early Hints, only the final response', async () => {
    let informational = 0;
    const r = await new Promise<Response>((resolve, reject) => {
      const req = httpRequest(`${rig.front.url}/eh?mode=early-hints`, { agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('information', () => informational++);
      req.on('error', reject);
      req.end();
    });
    assert.equal(r.status, 200);
    assert.equal(informational, 0);
    assert.equal(echoOf(r).url, '/eh?mode=early-hints');
    expectResult(await rig.front.nextOutcome());
  });

  it('filters hop-by-hop response fields, keeps repeated Set-Cookie, applies policy response headers', async () => {
    rig.up.setHandler((_req, res) => {
      res.writeHead(200, [
        'Connection', 'keep-alive, X-Upstream-Hop',
        'X-Upstream-Hop', 'secret',
        'Keep-Alive', 'timeout=5',
        'Set-Cookie', 'a=1',
        'Set-Cookie', 'b=2',
        'X-Policy', 'upstream',
        'Content-Type', 'text/plain',
      ]);
      res.end('ok');
    });
    rig.front.responseHeaders = { 'X-Policy': 'regate' };
    try {
      const r = await send(`${rig.front.url}/cookies`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
      assert.equal(r.headers['x-upstream-hop'], undefined);
      assert.equal(r.headers['keep-alive'], undefined);
      assert.equal(r.headers['x-policy'], 'regate');
      assert.equal(r.body.toString(), 'ok');
      expectResult(await rig.front.nextOutcome());
    } finally {
      rig.up.setHandler(null);
      rig.front.responseHeaders = undefined;
    }
  });

  it('refuses invalid policy response headers before contacting the upstream', async () => {
    const before = rig.up.requests.length;
    rig.front.responseHeaders = { 'Content-Length': '0' };
    try {
      const r = await send(`${rig.front.url}/x`);
      assert.equal(r.status, 500);
      assert.equal(r.body.toString(), 'invalid_decision_header');
      await rig.front.nextOutcome();
      assert.equal(rig.up.requests.length, before);
    } finally {
      rig.front.responseHeaders = undefined;
    }
  });

  it('POST with Expect: 100-continue works; the upstream gets the body, not the Expect', async () => {
    let continued = false;
    const r = await new Promise<Response>((resolve, reject) => {
      const req = httpRequest(`${rig.front.url}/expect`, { method: 'POST', agent: false, headers: { expect: '100-continue', 'content-length': '5' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('continue', () => {
        continued = true;
        req.end('hello');
      });
      req.on('error', reject);
    });
    assert.ok(continued);
    const echo = echoOf(r);
    assert.equal(echo.body, 'hello');
    assert.equal(echo.headers.expect, undefined);
    expectResult(await rig.front.nextOutcome());
  });
});

describe('forward: request bodies', () => {
  let up: TestUpstream;
  let upstream: Upstream;
  before(async () => {
    up = await startUpstreamServer();
    upstream = createUpstream(upstreamConfig(up.url));
  });
  after(async () => {
    await upstream.close();
    await up.close();
  });

  it('forwards a body the pipeline already read (chunked from the client, Content-Length upstream)', async () => {
    const front = await startFront(upstream, { bufferBody: true });
    try {
      const r = await send(`${front.url}/buffered`, {
        method: 'POST',
        body: async (req) => {
          req.write('{"a":');
          req.end('1}');
        },
      });
      const echo = echoOf(r);
      assert.equal(echo.body, '{"a":1}');
      assert.equal(echo.headers['content-length'], '7');
      assert.equal(echo.headers['transfer-encoding'], undefined);
      expectResult(await front.nextOutcome());
    } finally {
      await front.close();
    }
  });

  it('forwards a GET body too (dropping it would leave Content-Length promising bytes that never come)', async () => {
    const front = await startFront(upstream);
    try {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const r = await send(`${front.url}/get-with-body`, { method: 'GET', headers: { 'content-length': '5' }, body: Buffer.from('hello'), agent });
      assert.equal(echoOf(r).body, 'hello');
      const next = await send(`${front.url}/next`, { agent });
      assert.equal(echoOf(next).url, '/next');
      agent.destroy();
      expectResult(await front.nextOutcome());
      expectResult(await front.nextOutcome());
    } finally {
      await front.close();
    }
  });

  it('rejects caller mistakes with TypeError: relative path, body already consumed', async () => {
    const server = createServer((req, res) => {
      const headers = { 'content-length': req.headers['content-length'] ?? '0' };
      const isTypeError = (p: Promise<unknown>) => p.then(() => false, (e: unknown) => e instanceof TypeError);
      const relative = isTypeError(upstream.forward(req, res, { method: 'GET', path: 'relative', headers }));
      req.resume();
      req.on('end', () => {
        const consumed = isTypeError(upstream.forward(req, res, { method: 'POST', path: '/x', headers }));
        Promise.all([relative, consumed]).then((flags) => res.end(JSON.stringify(flags)));
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const r = await send(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { method: 'POST', body: Buffer.from('abc') });
      assert.deepEqual(JSON.parse(r.body.toString()), [true, true]);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('forward: base path', () => {
  it('prefixes the upstream URL path to the wire path', async () => {
    const up = await startUpstreamServer();
    const upstream = createUpstream(upstreamConfig(`${up.url}/api/v2/`));
    const front = await startFront(upstream);
    try {
      assert.equal(upstream.basePath, '/api/v2');
      const r = await send(`${front.url}/models?mode=echo`);
      assert.equal(echoOf(r).url, '/api/v2/models?mode=echo');
      expectResult(await front.nextOutcome());
    } finally {
      await front.close();
      await upstream.close();
      await up.close();
    }
  });

  it('refuses upstream URLs with credentials, query or fragment', () => {
    for (const url of ['http://u:p@127.0.0.1:1', 'http://127.0.0.1:1/?a=1', 'http://127.0.0.1:1/#f', 'ftp://127.0.0.1']) {
      assert.throws(() => createUpstream(upstreamConfig(url)), TypeError, url);
    }
  });
});

describe('forward: failures before the response starts', () => {
  it('upstream down → 502 upstream_unavailable', async () => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const upstream = createUpstream(upstreamConfig(`http://127.0.0.1:${port}`));
    const front = await startFront(upstream);
    try {
      const r = await send(`${front.url}/x`);
      assert.equal(r.status, 502);
      assert.equal(r.body.toString(), 'upstream_unavailable');
      const err = expectError(await front.nextOutcome());
      assert.equal(err.code, 'REGATE_ERR_UPSTREAM');
      assert.ok(err.cause, 'original error kept as cause');
    } finally {
      await front.close();
      await upstream.close();
    }
  });

  it('slow headers → 504 upstream_timeout, and the upstream request is cancelled', async () => {
    const up = await startUpstreamServer();
    const upstream = createUpstream(upstreamConfig(up.url, { headers_ms: 200 }));
    const front = await startFront(upstream);
    try {
      const r = await send(`${front.url}/slow?mode=slow-headers&delay=5000`);
      assert.equal(r.status, 504);
      assert.equal(r.body.toString(), 'upstream_timeout');
      expectError(await front.nextOutcome());
      const rec = await withTimeout((await up.waitForRequest('/slow')).done, 5000, 'upstream to see the request closed');
      assert.equal(rec.aborted, true);
    } finally {
      await front.close();
      await upstream.close();
      await up.close();
    }
  });

  it('pool closed → 503 upstream_closed', async () => {
    const up = await startUpstreamServer();
    const upstream = createUpstream(upstreamConfig(up.url));
    const front = await startFront(upstream);
    try {
      await upstream.close();
      const r = await send(`${front.url}/x`);
      assert.equal(r.status, 503);
      assert.equal(r.body.toString(), 'upstream_closed');
    } finally {
      await front.close();
      await up.close();
    }
  });

  it('toUpstreamError maps undici and socket errors', () => {
    const cases: [unknown, number, string][] = [
      [new undiciErrors.ConnectTimeoutError(), 504, 'upstream_connect_timeout'],
      [Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' }), 504, 'upstream_connect_timeout'],
      [new undiciErrors.HeadersTimeoutError(), 504, 'upstream_timeout'],
      [new undiciErrors.SocketError('other side closed'), 502, 'upstream_unavailable'],
      [Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), 502, 'upstream_unavailable'],
      [Object.assign(new Error('x'), { code: 'ECONNRESET' }), 502, 'upstream_unavailable'],
      [Object.assign(new Error('getaddrinfo ENOTFOUND svc'), { code: 'ENOTFOUND' }), 502, 'upstream_unavailable'],
      [new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]), 502, 'upstream_unavailable'],
      [new undiciErrors.ClientClosedError(), 503, 'upstream_closed'],
      [new undiciErrors.HTTPParserError('bad'), 502, 'upstream_error'],
      [new Error('weird'), 502, 'upstream_error'],
    ];
    for (const [err, status, reason] of cases) {
      const e = toUpstreamError(err);
      assert.equal(e.status, status, String(err));
      assert.equal(e.reason, reason, String(err));
      assert.equal(e.cause, err);
    }
  });
});

describe('forward: failures after the response started', () => {
  const rig = withFront({ body_ms: 300 });

  /** Request and collect what arrives until the connection ends, cleanly or not. */
  function receive(path: string): Promise<{ status: number; bytes: number; clean: boolean }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(`${rig.front.url}${path}`, { agent: false }, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, clean: true }));
        res.on('error', () => resolve({ status: res.statusCode ?? 0, bytes, clean: false }));
        res.on('aborted', () => resolve({ status: res.statusCode ?? 0, bytes, clean: false }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('upstream resets mid-stream → the client connection is cut, reason upstream_reset', async () => {
    const r = await receive('/m?mode=close-mid-stream&bytes=4096');
    assert.equal(r.status, 200);
    assert.equal(r.clean, false, 'a truncated body must not look complete');
    const result = expectResult(await rig.front.nextOutcome());
    assert.equal(result.aborted, true);
    assert.equal(result.reason, 'upstream_reset');
    assert.equal(result.status, 200);
  });

  it('body idle timeout mid-stream → the client connection is cut, reason upstream_body_timeout', async () => {
    const r = await receive('/t?mode=slow-body&chunks=3&interval=2000&size=8');
    assert.equal(r.status, 200);
    assert.equal(r.clean, false);
    const result = expectResult(await rig.front.nextOutcome());
    assert.equal(result.aborted, true);
    assert.equal(result.reason, 'upstream_body_timeout');
  });
});

describe('forward: the client goes away', () => {
  const rig = withFront();

  it('mid-stream (SSE): the upstream sees its request closed', async () => {
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${rig.front.url}/sse?mode=sse&events=1000&interval=30`, { agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {});
      req.end();
    });
    const rec = await withTimeout((await rig.up.waitForRequest('/sse')).done, 5000, 'upstream to see the abort');
    assert.equal(rec.aborted, true);
    assert.ok(rec.sentAt.length < 1000);
    const result = expectResult(await rig.front.nextOutcome());
    assert.equal(result.aborted, true);
    assert.equal(result.reason, 'client_closed');
    assert.equal(result.status, 200);
  });

  it('while waiting for headers: the upstream sees its request closed, result has no status', async () => {
    const req = httpRequest(`${rig.front.url}/hold?mode=hold`, { agent: false });
    req.on('error', () => {});
    req.end();
    const rec = await withTimeout(rig.up.waitForRequest('/hold'), 5000, 'upstream request');
    req.destroy();
    await withTimeout(rec.done, 5000, 'upstream to see the abort');
    assert.equal(rec.aborted, true);
    const result = expectResult(await rig.front.nextOutcome());
    assert.equal(result.reason, 'client_closed');
    assert.equal(result.status, 0);
  });

  it('mid-upload: the upstream sees its request closed, reason client_closed (not an upstream error)', async () => {
    const req = httpRequest(`${rig.front.url}/upload-aborted`, { method: 'POST', agent: false, headers: { 'content-length': String(8 * MiB) } });
    req.on('error', () => {});
    req.write(patternBytes(MiB));
    const rec = await withTimeout(rig.up.waitForRequest('/upload-aborted'), 5000, 'upstream request');
    await withTimeout(rec.bodyStarted, 5000, 'upstream body');
    req.destroy();
    await withTimeout(rec.done, 5000, 'upstream to see the abort');
    assert.equal(rec.aborted, true);
    const result = expectResult(await rig.front.nextOutcome());
    assert.equal(result.reason, 'client_closed');
  });
});

describe('request smuggling hygiene: what node refuses never reaches forward()', () => {
  const rig = withFront();

  /** Write raw bytes and read until the server closes. No half-close: node treats a FIN as the client leaving. */
  function raw(text: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = connect(rig.front.port, '127.0.0.1', () => s.write(text));
      let data = '';
      s.setEncoding('latin1');
      s.on('data', (d: string) => (data += d));
      s.on('close', () => resolve(data));
      s.on('error', reject);
    });
  }

  const cases: [string, string, string][] = [
    ['Content-Length with Transfer-Encoding', 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', '400'],
    ['two Content-Length', 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc', '400'],
    ['Transfer-Encoding not ending in chunked', 'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc', '400'],
    ['Transfer-Encoding gzip, chunked (refused by regate)', 'POST /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', '400'],
    ['two Host (refused by regate)', 'GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\nConnection: close\r\n\r\n', '400'],
    ['obs-fold', 'GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n', '400'],
    ['NUL in a value', 'GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n', '400'],
    ['space before colon', 'GET /a HTTP/1.1\r\nHost: x\r\nX-Regate-Sub : mallory\r\n\r\n', '400'],
  ];
  for (const [name, text, status] of cases) {
    it(`${name} → ${status}, nothing forwarded`, async () => {
      const before = rig.up.requests.length;
      const response = await raw(text);
      assert.match(response, new RegExp(`^HTTP/1\\.1 ${status} `));
      assert.equal(rig.up.requests.length, before);
    });
  }

  it('a smuggled second request in a chunked body stays body bytes', async () => {
    const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
    const chunk = smuggled.length.toString(16);
    const response = await raw(`POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunk}\r\n${smuggled}\r\n0\r\n\r\n`);
    assert.match(response, /^HTTP\/1\.1 200 /);
    const rec = rig.up.requests.at(-1)!;
    assert.equal(rec.url, '/a');
    assert.ok(!rig.up.requests.some((r) => r.url === '/smuggled'));
    const echo = JSON.parse(response.slice(response.indexOf('{'))) as EchoBody;
    assert.equal(echo.body, smuggled);
  });
});
