/**
 * Issue 3 capabilities end to end, through a real regate process: resource
 * attributes from a real catalog server, the JSON body as policy input (and
 * the same bytes upstream), 413, per-route time zones and the controllable
 * clock. Asserts on responses, on what the upstream and the catalog saw, on
 * decision-log records and on /metrics.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCatalogServer, type CatalogServer } from '../helpers/catalog-server.ts';
import { closedPort, rawRequest, send } from '../helpers/http.ts';
import { parseExposition, sampleValue } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { baseClaims, generateTestKey, jwksOf, signToken, TEST_ISSUER, type TestKey } from '../helpers/tokens.ts';
import { startUpstreamServer, type EchoBody, type TestUpstream } from '../helpers/upstream-server.ts';

const POLICY = `
package test.authz

default allow := false

catalog_routes := {"files", "files-down", "files-slow", "files-optional", "burst"}

allow if {
	input.route.id in catalog_routes
	"analyst" in input.subject.roles
	"pii:high" in input.resource.tags
}

allow if {
	input.route.id == "messages"
	{k | some k, _ in input.request.body} == {"categories"}
}

allow if {
	input.route.id in {"hours", "hours-default"}
	input.time.local.hour >= 9
	input.time.local.hour < 17
}

reasons contains sprintf("route %s denied", [input.route.id]) if not allow

decision := {"allow": allow, "reasons": reasons}
`;

/** regate's clock for the whole process: Monday 2026-03-09 16:30Z = 09:30 in Los Angeles (PDT), 01:30 next day in Tokyo. */
const CLOCK = '2026-03-09T16:30:00Z';
const CLOCK_S = Date.parse(CLOCK) / 1000;

let key: TestKey;
let upstream: TestUpstream;
let catalog: CatalogServer;
let regate: RegateProcess;

/** A token valid at regate's (fixed) clock — long expired by the wall clock. */
const token = (roles: string[] = ['analyst']): Promise<string> => signToken(key, baseClaims({ roles }, CLOCK_S));
const auth = async (roles?: string[]): Promise<Record<string, string>> => ({ authorization: `Bearer ${await token(roles)}` });
const forwarded = (): number => upstream.requests.length;

before(async () => {
  key = await generateTestKey('ES256');
  upstream = await startUpstreamServer();
  catalog = await startCatalogServer({
    '/files/report.csv': { json: { tags: ['pii:high'], owner: 'data-eng' } },
    '/files/public.csv': { json: { tags: ['public'] } },
    '/slow/report.csv': { json: { tags: ['pii:high'] }, delayMs: 3_000 },
  });
  const bundle = await buildBundle({ files: { 'authz.rego': POLICY }, entrypoints: ['test/authz/decision'], args: ['--revision', 'attr-rev-1'] });
  const dir = mkdtempSync(join(tmpdir(), 'regate-attr-'));
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwksOf(key)));
  const route = (id: string, methods: string[], path: string, extra: Record<string, unknown> = {}) => ({ id, match: { methods, path }, upstream: 'app', ...extra });
  const configFile = writeConfig(
    {
      listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      upstreams: { app: { url: upstream.url } },
      issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_file: './jwks.json', audiences: ['regate'], algorithms: ['ES256'] }],
      policy: { bundle, default_entrypoint: 'test/authz/decision', timezone: 'Asia/Tokyo' },
      decision_log: { destination: 'stdout' },
      routes: [
        route('files', ['GET'], '/files/{file}', { resource: { url: `${catalog.url}/files/{file}`, headers: { 'x-api-key': 'k-123' } }, expose_reasons: true }),
        route('files-down', ['GET'], '/down/{file}', { resource: { url: `http://127.0.0.1:${await closedPort()}/files/{file}` } }),
        route('files-slow', ['GET'], '/slow/{file}', { resource: { url: `${catalog.url}/slow/{file}`, timeout_ms: 200 } }),
        route('files-optional', ['GET'], '/maybe/{file}', { auth: 'optional', resource: { url: `${catalog.url}/files/{file}` } }),
        route('burst', ['GET'], '/burst/{file}', { resource: { url: `${catalog.url}/burst/{file}` } }),
        route('messages', ['PATCH', 'POST'], '/messages/{id}', { body: { max_bytes: 256 } }),
        route('hours', ['GET'], '/hours', { timezone: 'America/Los_Angeles' }),
        route('hours-default', ['GET'], '/hours-default'),
      ],
    },
    dir,
  );
  regate = await startRegate(configFile, { REGATE_CLOCK: CLOCK });
});

after(async () => {
  await regate?.stop();
  await upstream?.close();
  await catalog?.close();
});

/** The decision record of a response: a problem's `decision_id`, or the `X-Request-Id` the upstream echoed. */
async function decisionFor(res: { text: string }): Promise<Record<string, any>> {
  const body = JSON.parse(res.text) as { decision_id?: string; headers?: Record<string, string> };
  const id = body.decision_id ?? body.headers?.['x-request-id'];
  assert.ok(id, `no decision id in ${res.text}`);
  return regate.waitForDecision((r) => r.decision_id === id);
}

describe('resource attributes from the catalog', () => {
  it('allows on catalog attributes, looks the resource up once, then serves it from the cache', async () => {
    const before = forwarded();
    const first = await send(`${regate.proxyUrl}/files/report.csv`, { headers: await auth() });
    assert.equal(first.status, 200, first.text);
    const echo = first.json<EchoBody>();
    assert.equal(echo.url, '/files/report.csv');
    assert.equal(echo.headers['x-api-key'], undefined, 'catalog credentials never reach the upstream');
    const rec = await decisionFor(first);
    assert.deepEqual(rec.input.resource, { tags: ['pii:high'], owner: 'data-eng' });
    assert.equal(rec.custom.resource, 'miss');
    assert.equal(catalog.hits('/files/report.csv'), 1);
    assert.equal(catalog.requests.find((r) => r.url === '/files/report.csv')!.headers['x-api-key'], 'k-123');

    for (let i = 0; i < 3; i++) assert.equal((await send(`${regate.proxyUrl}/files/report.csv`, { headers: await auth() })).status, 200);
    assert.equal(catalog.hits('/files/report.csv'), 1, 'within ttl_s: no new catalog request');
    assert.equal(forwarded(), before + 4);
    const last = regate.decisions.at(-1)!;
    assert.equal((last.custom as Record<string, unknown>).resource, 'hit');
  });

  it('denies on catalog attributes: 403, nothing forwarded', async () => {
    const before = forwarded();
    const res = await send(`${regate.proxyUrl}/files/public.csv`, { headers: await auth() });
    assert.equal(res.status, 403);
    assert.deepEqual(res.json().reasons, ['route files denied']);
    assert.equal(forwarded(), before);
  });

  it('a resource the catalog does not know: 403 resource_not_found, nothing forwarded', async () => {
    const before = forwarded();
    const res = await send(`${regate.proxyUrl}/files/nope.csv`, { headers: await auth() });
    assert.equal(res.status, 403);
    assert.equal(res.json().reason, 'resource_not_found');
    const rec = await decisionFor(res);
    assert.equal(rec.custom.reason, 'resource_not_found');
    assert.equal(rec.custom.decision, 'deny');
    assert.equal(rec.input, undefined, 'the policy never ran');
    assert.equal(forwarded(), before);
  });

  it('catalog down: 503 resource_unavailable (fail closed), nothing forwarded', async () => {
    const before = forwarded();
    const res = await send(`${regate.proxyUrl}/down/report.csv`, { headers: await auth() });
    assert.equal(res.status, 503);
    assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    const p = res.json();
    assert.equal(p.reason, 'resource_unavailable');
    assert.equal(p.detail, 'resource attributes could not be loaded; the request was denied');
    const rec = await decisionFor(res);
    assert.equal(rec.custom.decision, 'error');
    assert.equal(rec.custom.resource, 'resource_unavailable');
    assert.equal(forwarded(), before);
  });

  it('catalog too slow: 503 resource_timeout', async () => {
    const before = forwarded();
    const res = await send(`${regate.proxyUrl}/slow/report.csv`, { headers: await auth() });
    assert.equal(res.status, 503);
    assert.equal(res.json().reason, 'resource_timeout');
    assert.equal(forwarded(), before);
  });

  it('N concurrent requests for one resource: exactly one catalog request', async () => {
    const target = '/burst/dataset.parquet';
    catalog.set(target, { json: { tags: ['pii:high'] }, delayMs: 10_000 });
    const headers = await auth();
    const n = 20;
    const responses = Array.from({ length: n }, () => send(`${regate.proxyUrl}${target}`, { headers }));
    for (let i = 0; i < 500 && catalog.hits(target) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    // Give the others time to join the lookup in flight (any that arrive later hit the cache: same count).
    await new Promise((r) => setTimeout(r, 200));
    catalog.releaseAll();
    const statuses = (await Promise.all(responses)).map((r) => r.status);
    assert.deepEqual(statuses, Array<number>(n).fill(200));
    assert.equal(catalog.hits(target), 1);
    const exp = parseExposition(await (await fetch(`${regate.adminUrl}/metrics`)).text());
    const miss = sampleValue(exp, 'regate_attribute_lookups_total', { route: 'burst', result: 'miss' })!;
    const shared = sampleValue(exp, 'regate_attribute_lookups_total', { route: 'burst', result: 'coalesced' })! + sampleValue(exp, 'regate_attribute_lookups_total', { route: 'burst', result: 'hit' })!;
    assert.equal(miss, 1);
    assert.equal(shared, n - 1);
    assert.equal(sampleValue(exp, 'regate_attribute_fetch_duration_seconds_count', { route: 'burst' }), 1);
  });

  it('anonymous callers never reach the catalog (auth: optional): input.resource absent, denied', async () => {
    const before = catalog.hits();
    const res = await send(`${regate.proxyUrl}/maybe/report.csv`);
    assert.equal(res.status, 403);
    const rec = await decisionFor(res);
    assert.equal(rec.custom.resource, 'skipped');
    assert.equal(rec.input.resource, undefined);
    assert.equal(catalog.hits(), before);
  });

  it('counts lookups and failures in /metrics', async () => {
    const exp = parseExposition(await (await fetch(`${regate.adminUrl}/metrics`)).text());
    // report.csv and public.csv: one catalog request each.
    assert.equal(sampleValue(exp, 'regate_attribute_lookups_total', { route: 'files', result: 'miss' }), 2);
    assert.ok(sampleValue(exp, 'regate_attribute_lookups_total', { route: 'files', result: 'hit' })! >= 3);
    assert.equal(sampleValue(exp, 'regate_attribute_lookups_total', { route: 'files', result: 'resource_not_found' }), 1);
    assert.equal(sampleValue(exp, 'regate_attribute_lookups_total', { route: 'files-down', result: 'resource_unavailable' }), 1);
    assert.equal(sampleValue(exp, 'regate_attribute_lookups_total', { route: 'files-slow', result: 'resource_timeout' }), 1);
    assert.equal(sampleValue(exp, 'regate_denials_total', { route: 'files-down', reason: 'resource_unavailable' }), 1);
    assert.equal(sampleValue(exp, 'regate_denials_total', { route: 'files', reason: 'resource_not_found' }), 1);
  });
});

describe('request body as policy input', () => {
  const sha = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex');

  it('allows on the parsed body and forwards exactly the same bytes', async () => {
    const body = '{"categories": ["billing"]}';
    const res = await send(`${regate.proxyUrl}/messages/42`, { method: 'PATCH', headers: { ...(await auth()), 'content-type': 'application/json' }, body });
    assert.equal(res.status, 200, res.text);
    const echo = res.json<EchoBody>();
    assert.equal(echo.bodySha256, sha(body));
    assert.equal(echo.headers['content-length'], String(Buffer.byteLength(body)));
    const rec = await decisionFor(res);
    assert.deepEqual(rec.input.request.body, { categories: ['billing'] });
    assert.equal(rec.custom.body, 'parsed');
  });

  it('a chunked upload is forwarded as the same bytes with a Content-Length', async () => {
    const part1 = '{"categories":';
    const part2 = ' ["a", "b"]}';
    const chunk = (s: string): string => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;
    const url = new URL(regate.proxyUrl);
    const res = await rawRequest(
      regate.proxyUrl,
      `POST /messages/7 HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${await token()}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked`,
      `${chunk(part1)}${chunk(part2)}0\r\n\r\n`,
    );
    assert.equal(res.status, 200, res.text);
    const echo = res.json<EchoBody>();
    assert.equal(echo.body, part1 + part2);
    assert.equal(echo.headers['content-length'], String(Buffer.byteLength(part1 + part2)));
    assert.equal(echo.headers['transfer-encoding'], undefined);
  });

  it('denies on the body (a field the policy does not allow): 403, nothing forwarded', async () => {
    const before = forwarded();
    const res = await send(`${regate.proxyUrl}/messages/42`, { method: 'PATCH', headers: { ...(await auth()), 'content-type': 'application/json' }, body: '{"categories":[],"to":"all@corp"}' });
    assert.equal(res.status, 403);
    assert.equal(forwarded(), before);
  });

  it('a JSON body that does not parse, or is ambiguous, is refused: 400 body_malformed before the policy, nothing forwarded', async () => {
    const before = forwarded();
    for (const body of ['{"categories":', '{"categories":[],"categories":["x"]}', '{"categories":["\\ud800"]}']) {
      const res = await send(`${regate.proxyUrl}/messages/1`, { method: 'POST', headers: { ...(await auth()), 'content-type': 'application/json' }, body });
      assert.equal(res.status, 400, body);
      assert.equal(res.json().reason, 'body_malformed', body);
      const rec = await decisionFor(res);
      assert.equal(rec.custom.body, 'body_malformed');
      assert.equal(rec.custom.reason, 'body_malformed');
    }
    assert.equal(forwarded(), before);
  });

  it('a body that is not JSON is not parsed: input.request.body absent, custom.body says why, the policy decides', async () => {
    const before = forwarded();
    for (const [type, body, why] of [
      ['text/plain', '{"categories":[]}', 'body_not_json'],
      ['application/json', '', 'body_empty'],
    ] as const) {
      const res = await send(`${regate.proxyUrl}/messages/1`, { method: 'POST', headers: { ...(await auth()), 'content-type': type }, body });
      assert.equal(res.status, 403, why);
      const rec = await decisionFor(res);
      assert.equal(rec.custom.body, why);
      assert.equal('body' in rec.input.request, false, why);
    }
    assert.equal(forwarded(), before);
  });

  it('over max_bytes: 413 body_too_large, nothing forwarded — declared or chunked', async () => {
    const before = forwarded();
    const big = JSON.stringify({ categories: ['x'.repeat(300)] });
    const declared = await send(`${regate.proxyUrl}/messages/1`, { method: 'POST', headers: { ...(await auth()), 'content-type': 'application/json' }, body: big });
    assert.equal(declared.status, 413);
    assert.equal(declared.json().reason, 'body_too_large');
    const url = new URL(regate.proxyUrl);
    const chunked = await rawRequest(
      regate.proxyUrl,
      `POST /messages/1 HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${await token()}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked`,
      `100\r\n${'a'.repeat(256)}\r\n100\r\n${'b'.repeat(256)}\r\n0\r\n\r\n`,
    );
    assert.equal(chunked.status, 413);
    assert.equal(chunked.headers.connection, 'close');
    assert.equal(forwarded(), before);
    const rec = await decisionFor(declared);
    assert.equal(rec.custom.reason, 'body_too_large');
  });

  it('a content-encoded body (gzip) cannot be judged: 415, nothing forwarded', async () => {
    const before = forwarded();
    const gz = gzipSync('{"categories":["billing"],"to":"all@corp"}');
    const res = await send(`${regate.proxyUrl}/messages/42`, {
      method: 'PATCH',
      headers: { ...(await auth()), 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gz,
    });
    assert.equal(res.status, 415);
    assert.equal(res.json().reason, 'unsupported_content_encoding');
    assert.equal(forwarded(), before);
    const ok = await send(`${regate.proxyUrl}/messages/42`, {
      method: 'PATCH',
      headers: { ...(await auth()), 'content-type': 'application/json', 'content-encoding': 'identity' },
      body: '{"categories":["billing"]}',
    });
    assert.equal(ok.status, 200, 'identity is no coding');
  });

  it('an unauthenticated request is refused before its body is read', async () => {
    const res = await send(`${regate.proxyUrl}/messages/1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"categories":[]}' });
    assert.equal(res.status, 401);
    const rec = await decisionFor(res);
    assert.equal(rec.custom.body, undefined);
  });
});

describe('time zones and the clock', () => {
  it("the route's timezone overrides policy.timezone for input.time.local; the fixed clock also decides token expiry", async () => {
    // The tokens expire an hour after CLOCK: long ago by the wall clock, valid by regate's.
    const la = await send(`${regate.proxyUrl}/hours`, { headers: await auth() });
    assert.equal(la.status, 200, la.text);
    const rec = await decisionFor(la);
    assert.equal(rec.input.time.timezone, 'America/Los_Angeles');
    assert.equal(rec.input.time.local.clock, '09:30:00');
    assert.equal(rec.input.time.local.offset, '-07:00');
    assert.equal(rec.input.time.rfc3339, '2026-03-09T16:30:00.000Z');

    const tokyo = await send(`${regate.proxyUrl}/hours-default`, { headers: await auth() });
    assert.equal(tokyo.status, 403);
    const rec2 = await decisionFor(tokyo);
    assert.equal(rec2.input.time.timezone, 'Asia/Tokyo');
    assert.equal(rec2.input.time.local.clock, '01:30:00');

    const stale = await signToken(key, baseClaims({ roles: ['analyst'] }, CLOCK_S - 7200));
    const expired = await send(`${regate.proxyUrl}/hours`, { headers: { authorization: `Bearer ${stale}` } });
    assert.equal(expired.status, 401);
    assert.equal(expired.json().reason, 'token_expired');
  });
});
