/**
 * Hostile HTTP/2 clients against a real regate process (h2c prior
 * knowledge), with hand-written frames (test/helpers/h2-frames.ts): every
 * attack is refused or bounded, counted where regate counts it, and the
 * listener keeps serving well-behaved clients afterwards.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { connectRaw, ERROR, errorCode, FLAG, frame, FRAME, headerBlock, requestFields, rapidReset } from '../helpers/h2-frames.ts';
import { parseExposition, sampleValue } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

let upstream: TestUpstream;
let regate: RegateProcess;
let port: number;
let authority: string;

before(async () => {
  upstream = await startUpstreamServer();
  const bundle = await buildBundle({ files: { 'authz.rego': 'package t\n\ndecision := {"allow": true}\n' }, entrypoints: ['t/decision'] });
  const configFile = writeConfig({
    listen: {
      proxy: { host: '127.0.0.1', port: 0, http2: { h2c: true, max_concurrent_streams: 4, max_header_list_bytes: 4096, max_resets: 20, reset_window_ms: 60_000 } },
      admin: { host: '127.0.0.1', port: 0 },
    },
    upstreams: { app: { url: upstream.url } },
    policy: { bundle, default_entrypoint: 't/decision' },
    routes: [{ id: 'open', match: { methods: ['GET', 'POST'], path: '/open/{rest*}' }, upstream: 'app', auth: 'none' }],
  });
  regate = await startRegate(configFile);
  const u = new URL(regate.proxyUrl);
  port = Number(u.port);
  authority = u.host;
});

after(async () => {
  await regate?.stop();
  await upstream?.close();
});

/** One request with node's own client: status and body. */
async function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const session = http2.connect(regate.proxyUrl);
  try {
    return await new Promise((resolve, reject) => {
      const s = session.request({ ':path': path, ...headers });
      let status = 0;
      let body = '';
      s.setEncoding('utf8');
      s.on('response', (h) => (status = Number(h[':status'])));
      s.on('data', (c: string) => (body += c));
      s.on('end', () => resolve({ status, body }));
      s.on('error', reject);
    });
  } finally {
    session.close();
  }
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const res = await fetch(`${regate.adminUrl}/metrics`);
  return sampleValue(parseExposition(await res.text()), name, labels) ?? 0;
}

describe('HTTP/2 requests are judged like HTTP/1.1 ones', () => {
  it('serves a plain request and canonicalizes :path (path confusion is 400)', async () => {
    assert.equal((await get('/open/a')).status, 200);
    const confused = await get('/open/%2e%2e/admin');
    assert.equal(confused.status, 400);
    assert.equal(upstream.requests.some((r) => r.url.includes('admin')), false);
  });

  it('refuses a Host header that differs from :authority (400), nothing forwarded', async () => {
    const raw = await connectRaw(port);
    try {
      raw.send(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, headerBlock([...requestFields('/open/host', authority), ['host', 'evil.example']])));
      const f = await raw.waitFor((x) => x.streamId === 1 && x.type === FRAME.HEADERS);
      // HPACK static table entry 12 is `:status: 400`, the first field node writes.
      assert.equal(f.payload[0], 0x8c);
      const body = await raw.waitFor((x) => x.streamId === 1 && x.type === FRAME.DATA);
      assert.equal(JSON.parse(body.payload.toString()).reason, 'h2_authority_mismatch');
      assert.equal(upstream.requests.some((r) => r.url === '/open/host'), false);
    } finally {
      raw.destroy();
    }
  });

  it('a connection-specific header field never reaches the upstream (stream reset or 400)', async () => {
    const raw = await connectRaw(port);
    try {
      raw.send(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, headerBlock([...requestFields('/open/te', authority), ['transfer-encoding', 'chunked']])));
      const f = await raw.waitFor((x) => x.streamId === 1 && (x.type === FRAME.RST_STREAM || x.type === FRAME.HEADERS));
      if (f.type === FRAME.RST_STREAM) assert.equal(errorCode(f), ERROR.PROTOCOL_ERROR);
      assert.equal(upstream.requests.some((r) => r.url === '/open/te'), false);
    } finally {
      raw.destroy();
    }
  });
});

describe('HTTP/2 hardening', () => {
  it('an oversized header list is refused (431 header_too_large or a reset); nothing forwarded, the port still serves', async () => {
    const raw = await connectRaw(port);
    try {
      const big = headerBlock([...requestFields('/open/big', authority), ['x-big', 'a'.repeat(8000)]]);
      raw.send(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, big));
      const f = await raw.waitFor((x) => (x.streamId === 1 && (x.type === FRAME.RST_STREAM || x.type === FRAME.DATA)) || x.type === FRAME.GOAWAY);
      if (f.type === FRAME.DATA) assert.equal(JSON.parse(f.payload.toString()).status, 431);
      assert.equal(upstream.requests.some((r) => r.url === '/open/big'), false);
    } finally {
      raw.destroy();
    }
    // Spread over CONTINUATION frames: the same limit.
    const raw2 = await connectRaw(port);
    try {
      const block = headerBlock([...requestFields('/open/big2', authority), ['x-a', 'a'.repeat(3000)], ['x-b', 'b'.repeat(3000)]]);
      raw2.send(frame(FRAME.HEADERS, FLAG.END_STREAM, 1, block.subarray(0, 1000)), frame(FRAME.CONTINUATION, 0, 1, block.subarray(1000, 4000)), frame(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, block.subarray(4000)));
      const f = await raw2.waitFor((x) => (x.streamId === 1 && (x.type === FRAME.RST_STREAM || x.type === FRAME.DATA)) || x.type === FRAME.GOAWAY);
      if (f.type === FRAME.DATA) assert.equal(JSON.parse(f.payload.toString()).status, 431);
      assert.equal(upstream.requests.some((r) => r.url === '/open/big2'), false);
    } finally {
      raw2.destroy();
    }
    assert.equal((await get('/open/after-big')).status, 200);
  });

  it('a CONTINUATION flood ends the connection (GOAWAY or close), nothing forwarded', async () => {
    const raw = await connectRaw(port);
    try {
      raw.send(frame(FRAME.HEADERS, 0, 1, headerBlock(requestFields('/open/flood', authority))));
      // Endless CONTINUATION frames without END_HEADERS, each with a little more of a header list.
      const piece = headerBlock([['x-flood', 'b'.repeat(200)]]);
      for (let i = 0; i < 200 && !raw.frames.some((f) => f.type === FRAME.GOAWAY); i++) {
        raw.send(frame(FRAME.CONTINUATION, 0, 1, piece));
        if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
      }
      await Promise.race([raw.waitFor((x) => x.type === FRAME.GOAWAY || (x.type === FRAME.RST_STREAM && x.streamId === 1)), raw.closed]);
      assert.equal(upstream.requests.some((r) => r.url === '/open/flood'), false);
    } finally {
      raw.destroy();
    }
    assert.equal((await get('/open/after-flood')).status, 200);
  });

  it('rapid reset: more than max_resets cancelled streams → GOAWAY ENHANCE_YOUR_CALM, counted', async () => {
    const goawaysBefore = await metric('regate_http2_goaway_total', { reason: 'rapid_reset' });
    const resetsBefore = await metric('regate_http2_streams_reset_total');
    // A slow upstream: every stream is still waiting for its response when the client cancels it.
    upstream.setHandler((req, res) => {
      setTimeout(() => {
        if (!res.destroyed) res.end('late');
      }, 2000);
    });
    const raw = await connectRaw(port);
    try {
      await rapidReset(raw, (i) => requestFields(`/open/rr-${i}`, authority));
      const goaway = await raw.waitFor((x) => x.type === FRAME.GOAWAY);
      assert.equal(errorCode(goaway), ERROR.ENHANCE_YOUR_CALM);
      await raw.closed;
    } finally {
      raw.destroy();
      upstream.setHandler(null);
    }
    assert.equal(await metric('regate_http2_goaway_total', { reason: 'rapid_reset' }), goawaysBefore + 1);
    assert.ok((await metric('regate_http2_streams_reset_total')) >= resetsBefore + 21);
    assert.equal((await get('/open/after-rr')).status, 200);
  });

  it('a stream beyond max_concurrent_streams is refused (REFUSED_STREAM)', async () => {
    const raw = await connectRaw(port);
    try {
      // Four streams whose bodies never end stay open; the fifth is over the limit.
      for (let i = 0; i < 5; i++) {
        raw.send(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1 + 2 * i, headerBlock(requestFields(`/open/open-${i}`, authority, 'POST'))));
      }
      const f = await raw.waitFor((x) => x.type === FRAME.RST_STREAM && x.streamId === 9);
      assert.equal(errorCode(f), ERROR.REFUSED_STREAM);
      assert.equal(upstream.requests.some((r) => r.url === '/open/open-4'), false);
    } finally {
      raw.destroy();
    }
  });
});
