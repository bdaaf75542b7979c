import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createAdminServer, type Readiness } from '../../../src/observe/admin.ts';
import { createMetrics } from '../../../src/observe/metrics.ts';
import { parseExposition, parseOpenMetrics, sampleValue } from '../../helpers/metrics.ts';

describe('admin server (real socket)', () => {
  const metrics = createMetrics({ routeIds: ['predict'], bundle: { name: 'regate', revision: 'r1' }, defaultMetrics: false });
  let readiness: () => Readiness = () => true;
  let server: Server;
  let base = '';

  before(async () => {
    server = createAdminServer({ registry: metrics.registry, ready: () => readiness() });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
  });

  it('GET /metrics serves the registry in its content type', async () => {
    metrics.jwksRefresh('x', 'success');
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), metrics.registry.contentType);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const exp = parseExposition(await res.text());
    assert.equal(sampleValue(exp, 'regate_policy_bundle_info', { name: 'regate', revision: 'r1' }), 1);
    assert.equal(sampleValue(exp, 'regate_jwks_refresh_total', { issuer: '_other', result: 'success' }), 1);
  });

  it('GET /metrics answers OpenMetrics to an Accept that prefers it (what Prometheus sends), text otherwise', async () => {
    const om = await fetch(`${base}/metrics`, { headers: { accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1' } });
    assert.equal(om.status, 200);
    assert.equal(om.headers.get('content-type'), 'application/openmetrics-text; version=1.0.0; charset=utf-8');
    assert.equal(om.headers.get('vary'), 'Accept');
    const exp = parseOpenMetrics(await om.text());
    assert.equal(exp.types.get('regate_jwks_refresh'), 'counter');
    assert.equal(sampleValue(exp, 'regate_policy_bundle_info', { name: 'regate', revision: 'r1' }), 1);
    const text = await fetch(`${base}/metrics`, { headers: { accept: 'text/plain' } });
    assert.equal(text.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(parseExposition(await text.text()).types.get('regate_jwks_refresh_total'), 'counter');
  });

  it('ignores the query string', async () => {
    assert.equal((await fetch(`${base}/metrics?name[]=x`)).status, 200);
  });

  it('HEAD answers with the GET status and headers and no body', async () => {
    const get = await fetch(`${base}/healthz`);
    const getBody = await get.text();
    const head = await fetch(`${base}/healthz`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(getBody)));
    assert.equal(await head.text(), '');
    assert.equal((await fetch(`${base}/metrics`, { method: 'HEAD' })).status, 200);
  });

  it('GET /healthz is 200 while the process runs, even when not ready', async () => {
    readiness = () => false;
    const res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok' });
  });

  it('GET /readyz reflects readiness and its checks', async () => {
    readiness = () => true;
    let res = await fetch(`${base}/readyz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ready' });

    readiness = () => ({ ready: false, checks: { policy: true, jwks: false } });
    res = await fetch(`${base}/readyz`);
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { status: 'not_ready', checks: { policy: true, jwks: false } });

    readiness = () => ({ ready: true, checks: { policy: true, jwks: true } });
    res = await fetch(`${base}/readyz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ready', checks: { policy: true, jwks: true } });
  });

  it('a readiness check that throws is not ready', async () => {
    readiness = () => {
      throw new Error('boom');
    };
    const res = await fetch(`${base}/readyz`);
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { status: 'not_ready' });
  });

  it('reads a registry getter on every scrape (a reload can swap it)', async () => {
    let current = createMetrics({ routeIds: ['a'], bundle: { name: 'regate', revision: 'one' }, defaultMetrics: false });
    const swappable = createAdminServer({ registry: () => current.registry, ready: () => true });
    await new Promise<void>((ok) => swappable.listen(0, '127.0.0.1', ok));
    const url = `http://127.0.0.1:${(swappable.address() as AddressInfo).port}/metrics`;
    try {
      let exp = parseExposition(await (await fetch(url)).text());
      assert.equal(sampleValue(exp, 'regate_policy_bundle_info', { name: 'regate', revision: 'one' }), 1);
      current = createMetrics({ routeIds: ['a'], bundle: { name: 'regate', revision: 'two' }, defaultMetrics: false });
      exp = parseExposition(await (await fetch(url)).text());
      assert.equal(sampleValue(exp, 'regate_policy_bundle_info', { name: 'regate', revision: 'two' }), 1);
    } finally {
      swappable.closeAllConnections();
      await new Promise<void>((ok) => swappable.close(() => ok()));
    }
  });

  it('404 for other paths, 405 with Allow for other methods', async () => {
    for (const path of ['/', '/metrics/', '/admin', '/v1/models/x/predict']) {
      assert.equal((await fetch(`${base}${path}`)).status, 404, path);
    }
    const res = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET, HEAD');
  });
});
