/**
 * `regate eval`, spawned as a real CLI against a real config, a bundle built
 * by the real opa, a JWKS file and a real catalog server on loopback.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCatalogServer, type CatalogServer } from '../../helpers/catalog-server.ts';
import { buildBundle } from '../../helpers/opa.ts';
import { cliPath, repoRoot, writeConfig } from '../../helpers/regate-process.ts';
import { baseClaims, generateTestKey, jwksOf, signToken, TEST_ISSUER, type TestKey } from '../../helpers/tokens.ts';

const POLICY = `
package test.authz

default allow := false

# Catalog-backed: analysts may read files the catalog tags pii:high.
allow if {
	input.route.id == "files"
	"analyst" in input.subject.roles
	"pii:high" in input.resource.tags
}

# Body-backed: a PATCH may change categories and nothing else.
allow if {
	input.route.id == "messages"
	{k | some k, _ in input.request.body} == {"categories"}
}

# Time-backed: 09:00-17:00 local (the route's time zone).
allow if {
	input.route.id == "hours"
	input.time.local.hour >= 9
	input.time.local.hour < 17
}

reasons contains sprintf("route %s denied", [input.route.id]) if not allow

decision := {"allow": allow, "reasons": reasons}
`;

let catalog: CatalogServer;
let key: TestKey;
let configFile: string;
let dir: string;

before(async () => {
  key = await generateTestKey('ES256');
  catalog = await startCatalogServer({
    '/files/report.csv': { json: { tags: ['pii:high'] } },
    '/files/public.csv': { json: { tags: ['public'] } },
  });
  const bundle = await buildBundle({ files: { 'authz.rego': POLICY }, entrypoints: ['test/authz/decision'], args: ['--revision', 'eval-rev-1'] });
  dir = mkdtempSync(join(tmpdir(), 'regate-eval-'));
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwksOf(key)));
  configFile = writeConfig(
    {
      upstreams: { app: { url: 'http://127.0.0.1:9' } },
      issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_file: './jwks.json', audiences: ['regate'], algorithms: ['ES256'] }],
      policy: { bundle, default_entrypoint: 'test/authz/decision', timezone: 'UTC' },
      routes: [
        { id: 'files', match: { methods: ['GET'], path: '/files/{file}' }, upstream: 'app', resource: { url: `${catalog.url}/files/{file}` } },
        { id: 'messages', match: { methods: ['PATCH'], path: '/messages/{id}' }, upstream: 'app', body: { max_bytes: 64 } },
        { id: 'hours', match: { methods: ['GET'], path: '/hours' }, upstream: 'app', timezone: 'America/Los_Angeles' },
      ],
    },
    dir,
  );
});

after(async () => {
  await catalog?.close();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  json(): Record<string, any>;
}

/** Spawn asynchronously: the catalog server answers from this process meanwhile. */
function evalCli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cliPath, 'eval', '--config', configFile, ...args], { cwd: repoRoot, timeout: 60_000, env: { ...process.env, REGATE_CLOCK: '' } }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? null) : 0;
      resolve({ code: typeof code === 'number' ? code : null, stdout, stderr, json: () => JSON.parse(stdout) as Record<string, any> });
    });
  });
}

const analyst = JSON.stringify({ iss: TEST_ISSUER, sub: 'ann', roles: ['analyst'] });

describe('regate eval: decisions and exit codes', () => {
  it('allow → exit 0, the explanation on stdout, ALLOW on stderr; catalog attributes in input.resource', async () => {
    const before = catalog.hits('/files/report.csv');
    const r = await evalCli('--path', '/files/report.csv', '--claims', analyst);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^ALLOW files \(claims unverified\)\n$/);
    const out = r.json();
    assert.deepEqual(out.route, { id: 'files', entrypoint: 'test/authz/decision' });
    assert.deepEqual(out.params, { file: 'report.csv' });
    assert.deepEqual(out.identity, { source: 'claims', verified: 'unverified (supplied claims)', issuer: 'idp' });
    assert.deepEqual(out.input.resource, { tags: ['pii:high'] });
    assert.deepEqual(out.input.subject.roles, ['analyst']);
    assert.deepEqual(out.result, { allow: true, reasons: [] });
    assert.deepEqual(out.decision, { allow: true, status: null, reason: 'allowed', reasons: [] });
    assert.equal(out.resource, 'miss');
    assert.deepEqual(out.bundle, { revision: 'eval-rev-1' });
    assert.equal(catalog.hits('/files/report.csv'), before + 1, 'the real catalog was asked');
  });

  it('policy deny → exit 3, DENY 403 with the reasons', async () => {
    const r = await evalCli('--path', '/files/public.csv', '--claims', analyst, '--format', 'summary');
    assert.equal(r.code, 3);
    assert.equal(r.stdout, 'DENY 403: route files denied (claims unverified)\n');
    assert.equal(r.stderr, '');
  });

  it('--resource replaces the catalog (attributes copied from a decision log)', async () => {
    const before = catalog.hits();
    const r = await evalCli('--path', '/files/unknown.csv', '--claims', analyst, '--resource', '{"tags":["pii:high"]}');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json().resource, 'supplied');
    assert.deepEqual(r.json().input.resource, { tags: ['pii:high'] });
    assert.equal(catalog.hits(), before, 'the catalog was not asked');
  });

  it('a catalog failure is reported as the proxy would answer it', async () => {
    const r = await evalCli('--path', '/files/missing.csv', '--claims', analyst);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^DENY 403: resource_not_found/);
    assert.equal(r.json().input, null);
    assert.equal(r.json().resource, 'resource_not_found');
  });

  it('--token is verified for real; --time is the clock for expiry and input.time', async () => {
    const now = Math.floor(Date.parse('2026-03-09T17:00:00Z') / 1000);
    const token = await signToken(key, baseClaims({ roles: ['analyst'] }, now));
    const ok = await evalCli('--path', '/files/report.csv', '--token', token, '--time', '2026-03-09T17:30:00Z');
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(ok.json().identity, { source: 'token', verified: true, issuer: 'idp' });
    assert.match(ok.stderr, /^ALLOW files\n$/);
    assert.equal(ok.json().input.time.rfc3339, '2026-03-09T17:30:00.000Z');

    const expired = await evalCli('--path', '/files/report.csv', '--token', token, '--time', '2026-03-09T19:00:00Z');
    assert.equal(expired.code, 3);
    assert.match(expired.stderr, /^DENY 401: token_expired\n$/);

    const forged = await evalCli('--path', '/files/report.csv', '--token', `${token.slice(0, -4)}AAAA`, '--time', '2026-03-09T17:30:00Z');
    assert.equal(forged.code, 3);
    assert.match(forged.stderr, /^DENY 401: invalid_signature/);
  });

  it('without an identity on an auth: required route: DENY 401 missing_token, with a hint', async () => {
    const r = await evalCli('--path', '/files/report.csv');
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^DENY 401: missing_token/);
    assert.ok(r.json().notes.some((n: string) => n.includes('--claims')));
  });

  it("the route's time zone drives input.time.local (DST-correct), from --time", async () => {
    // 2026-03-09 is the Monday after the US switch to daylight time: 16:00Z is 09:00 in Los Angeles.
    const open = await evalCli('--path', '/hours', '--claims', analyst, '--time', '2026-03-09T16:00:00Z');
    assert.equal(open.code, 0, open.stderr);
    assert.equal(open.json().input.time.timezone, 'America/Los_Angeles');
    assert.equal(open.json().input.time.local.clock, '09:00:00');
    assert.equal(open.json().input.time.local.offset, '-07:00');
    const early = await evalCli('--path', '/hours', '--claims', analyst, '--time', '2026-03-09T15:59:59Z');
    assert.equal(early.code, 3);
    assert.equal(early.json().input.time.local.clock, '08:59:59');
  });

  it('--body: the parsed JSON body decides; an over-limit body is a 413', async () => {
    const ok = await evalCli('--method', 'PATCH', '--path', '/messages/7', '--claims', analyst, '--body', '{"categories":["billing"]}');
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(ok.json().input.request.body, { categories: ['billing'] });
    assert.equal(ok.json().input.request.headers['content-type'], 'application/json');
    assert.equal(ok.json().body, 'parsed');

    const more = await evalCli('--method', 'PATCH', '--path', '/messages/7', '--claims', analyst, '--body', '{"categories":[],"subject":"x"}');
    assert.equal(more.code, 3);

    const text = await evalCli('--method', 'PATCH', '--path', '/messages/7', '--claims', analyst, '--body', '{"categories":[]}', '--header', 'Content-Type: text/plain');
    assert.equal(text.code, 3);
    assert.equal(text.json().body, 'body_not_json');
    assert.equal('body' in text.json().input.request, false);

    const big = await evalCli('--method', 'PATCH', '--path', '/messages/7', '--claims', analyst, '--body', JSON.stringify({ categories: ['x'.repeat(100)] }));
    assert.equal(big.code, 3);
    assert.match(big.stderr, /^DENY 413: body_too_large/);
  });

  it('refusals before routing: 404, 405, 400', async () => {
    assert.match((await evalCli('--path', '/nowhere', '--claims', analyst)).stderr, /^DENY 404: route_not_found/);
    const m = await evalCli('--method', 'DELETE', '--path', '/files/a', '--claims', analyst);
    assert.equal(m.code, 3);
    assert.match(m.stderr, /^DENY 405: method_not_allowed/);
    assert.match((await evalCli('--path', '/files/../etc/passwd', '--claims', analyst)).stderr, /^DENY 400: dot_segment/);
  });

  it('--request: the whole description from a file; flags win', async () => {
    const file = join(dir, 'request.json');
    writeFileSync(file, JSON.stringify({ method: 'PATCH', path: '/messages/1', headers: { 'X-Trace': 'abc' }, claims: JSON.parse(analyst), body: { categories: ['a'] } }));
    const r = await evalCli('--request', file);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json().input.request.headers['x-trace'], 'abc');
    assert.deepEqual(r.json().input.request.body, { categories: ['a'] });
    const overridden = await evalCli('--request', file, '--path', '/messages/2');
    assert.equal(overridden.json().input.request.path, '/messages/2');
  });

  it('bad requests and bad configs exit 1; usage errors exit 2', async () => {
    const notJson = await evalCli('--path', '/files/a', '--claims', '{oops');
    assert.equal(notJson.code, 1);
    assert.match(notJson.stderr, /--claims: not valid JSON/);
    assert.equal((await evalCli('--path', '/files/a', '--claims', analyst, '--time', 'yesterday')).code, 1);
    assert.equal((await evalCli('--path', '/files/a', '--claims', analyst, '--token', 'x.y.z')).code, 1);
    const missing = await new Promise<number | null>((resolve) =>
      execFile(process.execPath, [cliPath, 'eval', '--config', join(dir, 'nope.yaml'), '--path', '/'], { cwd: repoRoot }, (err) => resolve((err as { code?: number } | null)?.code ?? 0)),
    );
    assert.equal(missing, 1);
    assert.equal((await evalCli('--bogus')).code, 2);
    assert.equal((await evalCli()).code, 2, '--path is required');
  });
});
