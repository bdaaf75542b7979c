/**
 * One bundle request against a real loopback bundle server, and OPA's polling
 * and backoff delays.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { BundleError, type BundleReason } from '../../../src/errors.ts';
import { backoffDelayMs, fetchBundle, pollDelayMs, redactUrl } from '../../../src/policy/bundle-client.ts';
import { startBundleServer, type BundleServer } from '../../helpers/bundle-server.ts';

const BYTES = Buffer.from('pretend this is a .tar.gz');
const base = { headers: {}, timeoutMs: 5000, maxBytes: 1024 * 1024 };

async function fails(p: Promise<unknown>, reason: BundleReason, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof BundleError, String(err));
    assert.equal(err.reason, reason, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('fetchBundle', () => {
  let server: BundleServer;
  before(async () => {
    server = await startBundleServer(BYTES);
  });
  after(() => server.close());

  it('downloads the bundle with its ETag, then gets a 304 for If-None-Match', async () => {
    const first = await fetchBundle(server.url, base);
    assert.equal(first.status, 'modified');
    assert.deepEqual(first.status === 'modified' && Buffer.from(first.bytes), BYTES);
    assert.equal(first.status === 'modified' && first.etag, server.etag);
    const req = server.requests.at(-1)!;
    assert.equal(req.headers['if-none-match'], undefined);
    assert.equal(req.headers.prefer, 'modes=snapshot');

    const second = await fetchBundle(server.url, { ...base, etag: server.etag });
    assert.deepEqual(second, { status: 'not_modified', etag: server.etag });
    assert.equal(server.requests.at(-1)!.headers['if-none-match'], server.etag);
    assert.equal(server.served, 1);
    assert.equal(server.notModified, 1);
  });

  it('sends the configured headers', async () => {
    server.requireAuthorization = 'Bearer s3cret';
    try {
      await fails(fetchBundle(server.url, base), 'bundle_unavailable', /answered 401 Unauthorized/);
      const ok = await fetchBundle(server.url, { ...base, headers: { authorization: 'Bearer s3cret' } });
      assert.equal(ok.status, 'modified');
    } finally {
      server.requireAuthorization = undefined;
    }
  });

  it('fails on error statuses and does not follow redirects', async () => {
    server.mode = 'fail';
    server.failStatus = 503;
    await fails(fetchBundle(server.url, base), 'bundle_unavailable', /answered 503 Service Unavailable/);
    server.mode = 'redirect';
    await fails(fetchBundle(server.url, base), 'bundle_unavailable', /answered 302 Found \(redirects are not followed/);
    server.mode = 'ok';
    await fails(fetchBundle(server.url.replace('authz', 'other'), base), 'bundle_unavailable', /404/);
  });

  it('times out a server that never answers', async () => {
    server.mode = 'hang';
    try {
      await fails(fetchBundle(server.url, { ...base, timeoutMs: 200 }), 'bundle_timeout', /no complete answer within 200 ms/);
    } finally {
      server.mode = 'ok';
    }
  });

  it('caps the body: by Content-Length up front, and while streaming', async () => {
    await fails(fetchBundle(server.url, { ...base, maxBytes: 10 }), 'bundle_too_large', /more than policy\.service\.max_download_bytes \(10\)/);
    server.mode = 'huge';
    server.hugeBytes = 8 * 1024 * 1024;
    try {
      await fails(fetchBundle(server.url, { ...base, maxBytes: 256 * 1024 }), 'bundle_too_large');
    } finally {
      server.mode = 'ok';
    }
  });

  it('refuses a 304 to an unconditional request', async () => {
    const weird = createServer((_req, res) => {
      res.writeHead(304);
      res.end();
    });
    await new Promise<void>((r) => weird.listen(0, '127.0.0.1', r));
    try {
      await fails(fetchBundle(`http://127.0.0.1:${(weird.address() as AddressInfo).port}/b.tar.gz`, base), 'bundle_unavailable', /unconditional/);
    } finally {
      await new Promise((r) => weird.close(r));
    }
  });

  it('reports a connection failure, and an abort as the abort', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    await fails(fetchBundle(`http://127.0.0.1:${port}/b.tar.gz`, base), 'bundle_unavailable', /request failed/);

    server.mode = 'hang';
    try {
      const abort = new AbortController();
      const stopped = new Error('stopped');
      const seen = server.requests.length;
      const p = fetchBundle(server.url, { ...base, signal: abort.signal });
      await server.waitForRequests(seen + 1);
      abort.abort(stopped);
      await assert.rejects(p, (err: unknown) => err === stopped);
    } finally {
      server.mode = 'ok';
    }
  });

  it('never puts the query string (presigned URL secrets) in messages', () => {
    assert.equal(redactUrl('https://b.example.com/x/b.tar.gz?X-Amz-Signature=abc#f'), 'https://b.example.com/x/b.tar.gz');
  });
});

describe('polling delays (OPA download.go)', () => {
  it('polls uniformly within [min, max] seconds', () => {
    assert.equal(pollDelayMs(60, 120, () => 0), 60_000);
    assert.equal(pollDelayMs(60, 120, () => 0.5), 90_000);
    assert.ok(pollDelayMs(60, 120, () => 0.999999) <= 120_000);
    for (let i = 0; i < 1000; i++) {
      const d = pollDelayMs(5, 7);
      assert.ok(d >= 5000 && d <= 7000, String(d));
    }
    assert.equal(pollDelayMs(10, 10, Math.random), 10_000);
  });

  it('backs off like util.DefaultBackoff(100 ms, max, n): 0, then ×1.6, capped, ±20 %', () => {
    const mid = (): number => 0.5; // jitter factor exactly 1
    assert.equal(backoffDelayMs(0, 120, mid), 0, 'the first retry is immediate');
    const grown = [1, 2, 3, 4, 5].map((n) => backoffDelayMs(n, 120, mid));
    [160, 256, 409.6, 655.36, 1048.576].forEach((want, i) => assert.ok(Math.abs(grown[i]! - want) < 1e-6, `${grown[i]} vs ${want}`));
    assert.equal(backoffDelayMs(50, 120, mid), 120_000, 'capped at max_delay_seconds');
    assert.equal(backoffDelayMs(50, 1, mid), 1000);
    assert.ok(Math.abs(backoffDelayMs(1, 120, () => 0) - 128) < 1e-6, '-20 %');
    assert.ok(Math.abs(backoffDelayMs(1, 120, () => 1) - 192) < 1e-6, '+20 %');
    for (let n = 1; n < 40; n++) {
      const d = backoffDelayMs(n, 10);
      assert.ok(d >= 0 && d <= 12_000, String(d));
    }
  });
});
