import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createResourceCatalog, NOT_FOUND_TTL_MS, type CatalogObserver, type ResourceCatalog } from '../../../src/attributes/catalog.ts';
import type { ResourceSourceConfig } from '../../../src/config/types.ts';
import { AttributeSourceError } from '../../../src/errors.ts';
import { startCatalogServer, type CatalogServer } from '../../helpers/catalog-server.ts';

let server: CatalogServer;
const catalogs: ResourceCatalog[] = [];

before(async () => {
  server = await startCatalogServer();
});
after(async () => {
  await Promise.all(catalogs.map((c) => c.close()));
  await server.close();
});

/** A controllable monotonic clock (ms). */
function fakeClock(start = 1_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

function recorder(): CatalogObserver & { results: string[]; fetches: number } {
  const r = {
    results: [] as string[],
    fetches: 0,
    lookup(_route: string, result: string) {
      r.results.push(result);
    },
    fetched() {
      r.fetches++;
    },
  };
  return r;
}

function catalog(options: Parameters<typeof createResourceCatalog>[0] = {}): ResourceCatalog {
  const c = createResourceCatalog(options);
  catalogs.push(c);
  return c;
}

function config(path: string, over: Partial<ResourceSourceConfig> = {}): ResourceSourceConfig {
  return { url: `${server.url}${path}`, timeout_ms: 2000, ttl_s: 30, max_bytes: 65_536, headers: {}, ...over };
}

let seq = 0;
/** A target no other test uses, so hit counts are per test. */
const unique = (name: string): string => `/t${++seq}/${name}`;

async function rejection(p: Promise<unknown>): Promise<AttributeSourceError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AttributeSourceError, `expected AttributeSourceError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the lookup to fail');
}

describe('resource catalog: lookups and cache', () => {
  it('GETs the filled URL with Accept: application/json and the static headers, and returns the object', async () => {
    const base = unique('files');
    server.set(`${base}/report.csv`, { json: { tags: ['pii:high'], owner: 'data-eng' } });
    const obs = recorder();
    const src = catalog({ observer: obs }).source('r', config(`${base}/{file}`, { headers: { 'x-api-key': 'k1' } }), ['file']);
    const found = await src.lookup({ file: 'report.csv' });
    assert.deepEqual(found, { attributes: { tags: ['pii:high'], owner: 'data-eng' }, source: 'miss' });
    assert.ok(Object.isFrozen(found.attributes) && Object.isFrozen(found.attributes.tags), 'shared across requests: frozen');
    const req = server.requests.find((r) => r.url === `${base}/report.csv`)!;
    assert.equal(req.headers.accept, 'application/json');
    assert.equal(req.headers['x-api-key'], 'k1');
    assert.match(String(req.headers['user-agent']), /^regate\//);
    assert.deepEqual(obs.results, ['miss']);
    assert.equal(obs.fetches, 1);
  });

  it("encodes path params: '/', '?' and '#' stay inside one segment", async () => {
    const base = unique('enc');
    const value = 'dir/a?b#c';
    server.set(`${base}/dir%2Fa%3Fb%23c`, { json: { ok: true } });
    const src = catalog().source('r', config(`${base}/{path}`), ['path']);
    assert.deepEqual((await src.lookup({ path: value })).attributes, { ok: true });
    assert.equal(server.hits(`${base}/dir%2Fa%3Fb%23c`), 1);
  });

  it('serves repeated lookups within ttl_s from the cache: no new catalog request', async () => {
    const target = unique('cached');
    server.set(target, { json: { v: 1 } });
    const clock = fakeClock();
    const obs = recorder();
    const src = catalog({ monotonicMs: clock.now, observer: obs }).source('r', config(target, { ttl_s: 30 }), []);
    await src.lookup({});
    for (let i = 0; i < 5; i++) {
      clock.advance(5_000); // 25 s in total: still fresh
      assert.equal((await src.lookup({})).source, 'hit');
    }
    assert.equal(server.hits(target), 1);
    assert.deepEqual(obs.results, ['miss', 'hit', 'hit', 'hit', 'hit', 'hit']);
  });

  it('asks again once the entry expired (monotonic clock past ttl_s)', async () => {
    const target = unique('expiring');
    server.set(target, { json: { v: 1 } });
    const clock = fakeClock();
    const src = catalog({ monotonicMs: clock.now }).source('r', config(target, { ttl_s: 10 }), []);
    await src.lookup({});
    clock.advance(9_999);
    assert.equal((await src.lookup({})).source, 'hit');
    server.set(target, { json: { v: 2 } });
    clock.advance(2);
    const again = await src.lookup({});
    assert.deepEqual(again, { attributes: { v: 2 }, source: 'miss' });
    assert.equal(server.hits(target), 2);
  });

  it('ttl_s 0 never caches', async () => {
    const target = unique('nocache');
    server.set(target, { json: { v: 1 } });
    const src = catalog().source('r', config(target, { ttl_s: 0 }), []);
    await src.lookup({});
    await src.lookup({});
    assert.equal(server.hits(target), 2);
  });

  it('single flight: N concurrent lookups of one URL cost the catalog exactly one request', async () => {
    const target = unique('burst');
    server.set(target, { json: { shared: true }, delayMs: 5_000 });
    const obs = recorder();
    const src = catalog({ observer: obs }).source('r', config(target, { timeout_ms: 10_000 }), []);
    const n = 50;
    const lookups = Array.from({ length: n }, () => src.lookup({}));
    // Bounded wait until the one request reached the catalog, then let it answer.
    for (let i = 0; i < 200 && server.hits(target) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    server.releaseAll();
    const results = await Promise.all(lookups);
    assert.equal(server.hits(target), 1);
    assert.ok(results.every((r) => r.attributes === results[0]!.attributes), 'one shared, frozen object');
    assert.equal(results.filter((r) => r.source === 'miss').length, 1);
    assert.equal(results.filter((r) => r.source === 'coalesced').length, n - 1);
    assert.equal(obs.fetches, 1);
  });

  it('single flight also shares a failure, and the next lookup tries again', async () => {
    const target = unique('burst-fail');
    server.set(target, { status: 500, json: {}, delayMs: 5_000 });
    const src = catalog().source('r', config(target, { timeout_ms: 10_000 }), []);
    const lookups = Array.from({ length: 10 }, () => rejection(src.lookup({})));
    for (let i = 0; i < 200 && server.hits(target) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    server.releaseAll();
    const errors = await Promise.all(lookups);
    assert.ok(errors.every((e) => e.reason === 'resource_unavailable'));
    assert.equal(server.hits(target), 1);
    server.set(target, { json: { back: true } });
    assert.deepEqual((await src.lookup({})).attributes, { back: true }, 'a failure is never cached');
    assert.equal(server.hits(target), 2);
  });

  it('keys the cache by URL and static headers: other credentials, another request', async () => {
    const target = unique('keyed');
    server.set(target, { json: { v: 1 } });
    const c = catalog();
    await c.source('a', config(target, { headers: { 'x-api-key': 'one' } }), []).lookup({});
    await c.source('b', config(target, { headers: { 'x-api-key': 'one' } }), []).lookup({});
    assert.equal(server.hits(target), 1, 'same URL and headers: shared across routes');
    await c.source('c', config(target, { headers: { 'x-api-key': 'two' } }), []).lookup({});
    assert.equal(server.hits(target), 2);
  });

  it('is bounded: the least recently used entry is evicted', async () => {
    const base = unique('lru');
    for (const f of ['a', 'b', 'c']) server.set(`${base}/${f}`, { json: { f } });
    const c = catalog({ maxEntries: 2 });
    const src = c.source('r', config(`${base}/{f}`), ['f']);
    await src.lookup({ f: 'a' });
    await src.lookup({ f: 'b' });
    await src.lookup({ f: 'a' }); // a is now the most recent
    await src.lookup({ f: 'c' }); // evicts b
    assert.equal(c.size, 2);
    assert.equal((await src.lookup({ f: 'a' })).source, 'hit');
    assert.equal((await src.lookup({ f: 'b' })).source, 'miss');
    assert.equal(server.hits(`${base}/b`), 2);
  });
});

describe('resource catalog: failures deny (fail closed)', () => {
  it('404 → 403 resource_not_found, remembered briefly (≤ 5 s, ≤ ttl_s), then asked again', async () => {
    const target = unique('missing');
    const clock = fakeClock();
    const obs = recorder();
    const src = catalog({ monotonicMs: clock.now, observer: obs }).source('r', config(target), []);
    const e = await rejection(src.lookup({}));
    assert.equal(e.reason, 'resource_not_found');
    assert.equal(e.status, 403);
    clock.advance(NOT_FOUND_TTL_MS - 1);
    assert.equal((await rejection(src.lookup({}))).reason, 'resource_not_found');
    assert.equal(server.hits(target), 1, 'the repeated 404 came from the negative cache');
    server.set(target, { json: { created: true } });
    clock.advance(2);
    assert.deepEqual((await src.lookup({})).attributes, { created: true });
    assert.equal(server.hits(target), 2);
    assert.deepEqual(obs.results, ['resource_not_found', 'resource_not_found', 'miss']);
  });

  it('timeout → 503 resource_timeout', async () => {
    const target = unique('slow');
    server.set(target, { json: {}, delayMs: 3_000 });
    const e = await rejection(catalog().source('r', config(target, { timeout_ms: 100 }), []).lookup({}));
    assert.equal(e.reason, 'resource_timeout');
    assert.equal(e.status, 503);
  });

  it('too large → resource_too_large, by Content-Length or while streaming', async () => {
    const declared = unique('big-cl');
    server.set(declared, { body: JSON.stringify({ pad: 'x'.repeat(5_000) }) });
    assert.equal((await rejection(catalog().source('r', config(declared, { max_bytes: 4_096 }), []).lookup({}))).reason, 'resource_too_large');
    const streamed = unique('big-chunked');
    server.set(streamed, { body: JSON.stringify({ pad: 'x'.repeat(5_000) }), chunked: true });
    assert.equal((await rejection(catalog().source('r', config(streamed, { max_bytes: 4_096 }), []).lookup({}))).reason, 'resource_too_large');
    const exact = unique('exact');
    const body = JSON.stringify({ pad: 'x'.repeat(100) });
    server.set(exact, { body, chunked: true });
    assert.ok((await catalog().source('r', config(exact, { max_bytes: Buffer.byteLength(body) }), []).lookup({})).attributes);
  });

  it('not JSON, not an object, invalid UTF-8 or too deep → resource_invalid', async () => {
    const cases: [string, string | Buffer][] = [
      ['html', '<html>oops</html>'],
      ['array', '[1,2]'],
      ['null', 'null'],
      ['string', '"tags"'],
      ['utf8', Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])],
      ['deep', `{"a":${'['.repeat(100)}${']'.repeat(100)}}`],
    ];
    for (const [name, body] of cases) {
      const target = unique(name);
      server.set(target, { body });
      const e = await rejection(catalog().source('r', config(target), []).lookup({}));
      assert.equal(e.reason, 'resource_invalid', name);
      assert.equal(e.status, 503);
    }
  });

  it('keeps integers beyond 2^53 exact', async () => {
    const target = unique('bigint');
    server.set(target, { body: '{"id": 9223372036854775807, "n": 1}' });
    const { attributes } = await catalog().source('r', config(target), []).lookup({});
    assert.equal(attributes.id, 9223372036854775807n);
    assert.equal(attributes.n, 1);
  });

  it('another status or a refused connection → resource_unavailable', async () => {
    for (const status of [500, 503, 302, 401]) {
      const target = unique(`s${status}`);
      server.set(target, { status, json: {} });
      assert.equal((await rejection(catalog().source('r', config(target), []).lookup({}))).reason, 'resource_unavailable', String(status));
    }
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const port = (s.address() as { port: number }).port;
    await new Promise<void>((r) => s.close(() => r()));
    const e = await rejection(catalog().source('r', { ...config('/x'), url: `http://127.0.0.1:${port}/x` }, []).lookup({}));
    assert.equal(e.reason, 'resource_unavailable');
    assert.equal(e.detail, 'ECONNREFUSED');
  });
});
