/**
 * HTTP/2 upstreams against real node:http2 servers on loopback: trailers
 * relayed, a session that sent GOAWAY replaced, failures before the head
 * typed (502/504), the client going away cancels the upstream stream.
 */
import assert from 'node:assert/strict';
import http2, { type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { UpstreamConfig } from '../../../src/config/types.ts';
import { UpstreamError } from '../../../src/errors.ts';
import { createUpstream, type Upstream } from '../../../src/upstream/forward.ts';
import type { ResponseSink } from '../../../src/upstream/sink.ts';
import { closedPort } from '../../helpers/http.ts';
import { repoRoot } from '../../helpers/regate-process.ts';
import { createH2Upstream } from '../../../src/upstream/h2.ts';
import { watchUpstreamTls } from '../../../src/tls/client-context.ts';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function config(url: string, timeouts: Partial<UpstreamConfig['timeouts']> = {}): UpstreamConfig {
  return {
    id: 'h2',
    url,
    protocol: 'h2c',
    timeouts: { connect_ms: 1000, headers_ms: 2000, body_ms: 5000, ...timeouts },
    pool: { connections: 2, keepalive_timeout_ms: 4000 },
    request_headers_to_remove: [],
  };
}

/** A sink that records what a client would receive. */
function memorySink(): ResponseSink & { status: number; headers: Record<string, unknown>; body: string; trailers: Record<string, unknown> | null; ended: boolean; wasCut: boolean; leave(): void } {
  let gone: (() => void) | null = null;
  const s = {
    status: 0,
    headers: {} as Record<string, unknown>,
    body: '',
    trailers: null as Record<string, unknown> | null,
    ended: false,
    wasCut: false,
    headersSent: false,
    gone: false,
    respond(status: number, headers: Record<string, unknown>, end: boolean) {
      s.status = status;
      s.headers = headers;
      s.headersSent = true;
      if (end) s.ended = true;
    },
    write(chunk: Buffer) {
      s.body += chunk.toString();
      return true;
    },
    onDrain() {},
    end(trailers: Record<string, unknown> | null) {
      s.trailers = trailers;
      s.ended = true;
    },
    cut() {
      s.wasCut = true;
    },
    onGone(l: () => void) {
      gone = l;
    },
    leave() {
      s.gone = true;
      gone?.();
    },
  };
  return s;
}

let server: http2.Http2Server;
let url: string;
const seen: { path: string; headers: http2.IncomingHttpHeaders; session: http2.Http2Session }[] = [];
let cancelled = 0;

before(async () => {
  server = http2.createServer();
  server.on('stream', (stream: ServerHttp2Stream, headers) => {
    seen.push({ path: String(headers[':path']), headers, session: stream.session! });
    const path = String(headers[':path']);
    stream.on('close', () => {
      if (stream.rstCode === http2.constants.NGHTTP2_CANCEL) cancelled++;
    });
    if (path.includes('/hang')) return;
    let body = '';
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => (body += c));
    stream.on('end', () => {
      if (path.endsWith('/goaway')) {
        stream.respond({ ':status': 200 });
        stream.end('bye');
        stream.session!.goaway();
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'x-head': 'h', connection: undefined as unknown as string }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'x-trailer': 't' }));
      stream.end(`echo:${body}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

describe('HTTP/2 upstream', () => {
  let up: Upstream;
  before(() => {
    up = createUpstream(config(`${url}/base`));
  });
  after(() => up.close());

  it('relays status, headers, body and trailers; sends te: trailers for gRPC and the base path', async () => {
    const sink = memorySink();
    const result = await up.forwardTo(sink, null, { method: 'POST', path: '/svc/M', headers: { 'x-a': '1', host: 'ignored', connection: 'close' }, body: Buffer.from('hi') }, true);
    assert.equal(result.aborted, false);
    assert.equal(sink.status, 200);
    assert.equal(sink.headers['x-head'], 'h');
    assert.equal(sink.body, 'echo:hi');
    assert.deepEqual({ ...sink.trailers }, { 'grpc-status': '0', 'x-trailer': 't' });
    const req = seen.at(-1)!;
    assert.equal(req.path, '/base/svc/M');
    assert.equal(req.headers.te, 'trailers');
    assert.equal(req.headers['x-a'], '1');
    assert.equal(req.headers.connection, undefined);
  });

  it('a session that sent GOAWAY is replaced by a new one', async () => {
    await up.forwardTo(memorySink(), null, { method: 'POST', path: '/goaway', headers: {}, body: Buffer.alloc(0) }, false);
    const first = seen.at(-1)!.session;
    await new Promise((r) => setTimeout(r, 50));
    const sink = memorySink();
    await up.forwardTo(sink, null, { method: 'POST', path: '/after', headers: {}, body: Buffer.from('x') }, false);
    assert.equal(sink.body, 'echo:x');
    assert.notEqual(seen.at(-1)!.session, first);
  });

  it('the client going away cancels the upstream stream', async () => {
    const before = cancelled;
    const sink = memorySink();
    const p = up.forwardTo(sink, null, { method: 'POST', path: '/hang-cancel', headers: {}, body: Buffer.from('x') }, false);
    await new Promise((r) => setTimeout(r, 100));
    sink.leave();
    const result = await p;
    assert.equal(result.reason, 'client_closed');
    for (let i = 0; i < 50 && cancelled === before; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(cancelled, before + 1);
  });

  it('no response head within headers_ms → 504 upstream_timeout', async () => {
    const slow = createUpstream(config(url, { headers_ms: 150 }));
    try {
      await assert.rejects(
        slow.forwardTo(memorySink(), null, { method: 'POST', path: '/hang-timeout', headers: {}, body: Buffer.from('x') }, false),
        (e: unknown) => e instanceof UpstreamError && e.status === 504 && e.reason === 'upstream_timeout',
      );
    } finally {
      await slow.close();
    }
  });

  it('an upstream that is down → 502 upstream_unavailable', async () => {
    const down = createUpstream(config(`http://127.0.0.1:${await closedPort()}`));
    try {
      await assert.rejects(
        down.forwardTo(memorySink(), null, { method: 'GET', path: '/', headers: {} }, false),
        (e: unknown) => e instanceof UpstreamError && e.status === 502 && e.reason === 'upstream_unavailable',
      );
    } finally {
      await down.close();
    }
  });
});

describe('HTTP/2 upstream over TLS (protocol: h2 with tls)', () => {
  const fixture = (name: string): string => join(repoRoot, 'test/fixtures/tls', name);
  let secure: http2.Http2SecureServer;
  let secureUrl: string;
  let streams = 0;
  before(async () => {
    secure = http2.createSecureServer({ cert: readFileSync(fixture('server.pem')), key: readFileSync(fixture('server-key.pem')), allowHTTP1: false });
    secure.on('stream', (stream) => {
      streams++;
      stream.respond({ ':status': 200 });
      stream.end('secure');
    });
    await new Promise<void>((r) => secure.listen(0, '127.0.0.1', () => r()));
    secureUrl = `https://127.0.0.1:${(secure.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((r) => secure.close(() => r()));
  });

  const tlsConfig = (caFile: string): UpstreamConfig => ({ ...config(secureUrl), protocol: 'h2', tls: { ca_file: caFile, servername: 'localhost', min_version: 'TLSv1.2' } });

  it('verifies against ca_file; a CA that does not sign the certificate is 502 upstream_tls_error, nothing sent; a changed CA is used by the next session', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'regate-h2tls-unit-'));
    copyFileSync(fixture('other-ca.pem'), join(dir, 'ca.pem'));
    const events: string[] = [];
    const cfg = tlsConfig(join(dir, 'ca.pem'));
    const source = watchUpstreamTls(cfg, { reloaded: (r) => events.push(r) });
    const up = createH2Upstream(cfg, new URL(secureUrl), '', source);
    try {
      const before = streams;
      await assert.rejects(
        up.forwardTo(memorySink(), null, { method: 'GET', path: '/x', headers: {} }, false),
        (e: unknown) => e instanceof UpstreamError && e.status === 502 && e.reason === 'upstream_tls_error',
      );
      assert.equal(streams, before);
      copyFileSync(fixture('ca.pem'), join(dir, 'ca.pem'));
      await source.check();
      assert.deepEqual(events, ['success']);
      const sink = memorySink();
      await up.forwardTo(sink, null, { method: 'GET', path: '/x', headers: {} }, false);
      assert.equal(sink.status, 200);
      assert.equal(sink.body, 'secure');
    } finally {
      await up.close();
    }
  });

  it('createUpstream wires tls into the HTTP/2 pool (no public-CA fallback)', async () => {
    const up = createUpstream(tlsConfig(fixture('ca.pem')));
    try {
      const sink = memorySink();
      await up.forwardTo(sink, null, { method: 'GET', path: '/y', headers: {} }, false);
      assert.equal(sink.body, 'secure');
    } finally {
      await up.close();
    }
  });
});
