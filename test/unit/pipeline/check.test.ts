/**
 * check(): the one decision function, without sockets. A real runtime
 * (config loader, router, JWT verification against a JWKS file, a bundle
 * built by the real opa, the wasm engine) decides request views built here.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { fixedClock } from '../../../src/clock.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { AuthnError, BadRequestError, PolicyError, UpgradeRequiredError } from '../../../src/errors.ts';
import { check } from '../../../src/pipeline/check.ts';
import { shadowOf } from '../../../src/pipeline/decide.ts';
import { outcomeOf } from '../../../src/pipeline/record.ts';
import type { RequestView } from '../../../src/pipeline/view.ts';
import { readBundle } from '../../../src/policy/bundle.ts';
import { createRuntime, type Runtime } from '../../../src/runtime.ts';
import { buildBundle } from '../../helpers/opa.ts';
import { writeConfig } from '../../helpers/regate-process.ts';
import { baseClaims, generateTestKey, jwksOf, signToken, TEST_ISSUER, type TestKey } from '../../helpers/tokens.ts';

const POLICY = `
package test.authz

default allow := false

allow if "reader" in input.subject.roles
allow if input.route.id == "open"
allow if {
	input.route.id == "messages"
	input.request.body.ok == true
}
allow if input.route.id == "bad-header"
allow if input.route.id == "socket"

headers := {"x-forwarded-user": "mallory"} if input.route.id == "bad-header"
headers := {"x-policy": "seen"} if input.route.id != "bad-header"

decision := {"allow": allow, "reasons": ["readers only"], "headers": headers, "response_headers": {"x-why": "policy"}}

broken := {"allow": "yes"}

shadow := {"allow": true}
`;

const NOW = 1_780_000_000_000_000_000n;
let key: TestKey;
let rt: Runtime;
let logged: unknown[] = [];

before(async () => {
  key = await generateTestKey('ES256');
  const bundle = await buildBundle({ files: { 'authz.rego': POLICY }, entrypoints: ['test/authz/decision', 'test/authz/broken', 'test/authz/shadow'] });
  const dir = mkdtempSync(join(tmpdir(), 'regate-check-'));
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwksOf(key)));
  const route = (id: string, path: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    id,
    match: { methods: ['GET'], path },
    upstream: 'app',
    ...extra,
  });
  const file = writeConfig(
    {
      upstreams: { app: { url: 'http://127.0.0.1:9' } },
      issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_file: './jwks.json', audiences: ['regate'], algorithms: ['ES256'], claims: { roles: 'roles' } }],
      policy: { bundle, default_entrypoint: 'test/authz/decision', timezone: 'UTC' },
      routes: [
        route('files', '/files/{name}', { identity_headers: { 'x-user': 'subject.sub', 'x-decision': 'decision.id', 'x-email': 'token.email' } }),
        route('exposed', '/exposed', { expose_reasons: true }),
        route('open', '/open', { auth: 'none' }),
        route('broken', '/broken', { entrypoint: 'test/authz/broken' }),
        route('watched', '/watched', { dry_run: true, shadow: { entrypoint: 'test/authz/shadow' } }),
        route('bad-header', '/bad-header'),
        route('socket', '/socket', { auth: 'none', websocket: true }),
        { id: 'messages', match: { methods: ['POST'], path: '/messages' }, upstream: 'app', auth: 'none', body: { max_bytes: 64 } },
      ],
    },
    dir,
  );
  const config = await loadConfig(file);
  const logger = pino({ level: 'error' }, { write: (line: string) => void logged.push(JSON.parse(line)) });
  rt = await createRuntime(config, { active: await readBundle(bundle) }, { logger, offline: true, clock: fixedClock(NOW) });
});

after(async () => {
  await rt?.close();
});

function view(target: string, over: Partial<RequestView> & { token?: string } = {}): RequestView {
  const headers: Record<string, string> = { host: 'api.example.com' };
  const rawHeaders = ['Host', 'api.example.com'];
  if (over.token !== undefined) {
    headers.authorization = `Bearer ${over.token}`;
    rawHeaders.push('Authorization', headers.authorization);
  }
  return { method: 'GET', target, headers, rawHeaders, remoteAddr: '192.0.2.7', body: Buffer.alloc(0), ...over };
}

const reader = async (claims: Record<string, unknown> = {}): Promise<string> =>
  signToken(key, baseClaims({ aud: 'regate', sub: 'alice', roles: ['reader'], email: 'alice@example.com', ...claims }, Number(NOW / 1_000_000_000n)));

describe('check: allow', () => {
  it('routes on the canonical target, verifies the token and says what to add upstream', async () => {
    const v = await check(rt, view('/files/a%2Dreport.csv?x=1&x=2', { token: await reader() }));
    assert.equal(v.decision, 'allow');
    assert.equal(v.reason, 'allowed');
    assert.equal(v.route?.config.id, 'files');
    assert.deepEqual({ ...v.params }, { name: 'a-report.csv' });
    assert.equal(v.path, '/files/a-report.csv');
    assert.equal(v.identity?.sub, 'alice');
    assert.equal(v.input?.request.id, v.id);
    assert.deepEqual({ ...v.input?.request.query }, { x: ['1', '2'] });
    assert.equal(v.input?.request.remote_addr, '192.0.2.7');
    assert.equal(v.input?.request.headers.authorization, undefined, 'the token is not shown to the policy');
    assert.equal(v.nowNs, NOW);
    assert.deepEqual(v.upstream, {
      identity: { 'x-user': 'alice', 'x-decision': v.id, 'x-email': 'alice@example.com' },
      headers: { 'x-policy': 'seen' },
      responseHeaders: { 'x-why': 'policy' },
      credentials: [],
    });
    assert.equal(v.answer, null);
    assert.equal(v.error, null);
    assert.equal(v.evaluated, true);
    assert.deepEqual(v.result, { allow: true, reasons: ['readers only'], headers: { 'x-policy': 'seen' }, response_headers: { 'x-why': 'policy' } });
  });

  it('gives every check its own decision id', async () => {
    const token = await reader();
    const [a, b] = await Promise.all([check(rt, view('/files/a', { token })), check(rt, view('/files/a', { token }))]);
    assert.notEqual(a.id, b.id);
    assert.equal(a.upstream?.identity['x-decision'], a.id);
    assert.equal(b.upstream?.identity['x-decision'], b.id);
  });

  it('reads the body of a body route from the view and judges exactly those bytes', async () => {
    const bytes = Buffer.from('{"ok":true}');
    const v = await check(rt, view('/messages', { method: 'POST', headers: { host: 'h', 'content-type': 'application/json', 'content-length': '11' }, rawHeaders: [], body: bytes }));
    assert.equal(v.decision, 'allow');
    assert.equal(v.body, 'parsed');
    assert.equal(v.bodyBytes, bytes);
    assert.deepEqual(v.input?.request.body, { ok: true });
  });
});

describe('check: refusals are verdicts, never rejections', () => {
  it('path confusion: 400 before routing, the raw target logged bounded', async () => {
    const v = await check(rt, view(`/files/..%2fadmin${'x'.repeat(400)}`));
    assert.equal(v.decision, 'deny');
    assert.equal(v.answer?.status, 400);
    assert.ok(v.error instanceof BadRequestError);
    assert.equal(v.route, null);
    assert.equal(v.target, null);
    assert.equal(v.input, null);
    assert.equal(v.evaluated, false);
    assert.equal(v.path.length, 256);
    assert.equal(v.answer?.problem.decisionId, v.id);
    assert.equal(v.upstream, null);
  });

  it('no route → 404; another method → 405 with Allow', async () => {
    assert.equal((await check(rt, view('/nowhere'))).answer?.status, 404);
    const v = await check(rt, view('/open', { method: 'DELETE' }));
    assert.equal(v.answer?.status, 405);
    assert.equal(v.answer?.headers.allow, 'GET');
  });

  it('an invalid Host is refused (400 invalid_host)', async () => {
    const v = await check(rt, view('/open', { headers: { host: 'a.com@b.com' }, rawHeaders: ['Host', 'a.com@b.com'] }));
    assert.equal(v.reason, 'invalid_host');
    assert.equal(v.answer?.status, 400);
  });

  it('a missing token → 401 with a bare Bearer challenge; an expired one → error= in the challenge', async () => {
    const none = await check(rt, view('/files/a'));
    assert.equal(none.answer?.status, 401);
    assert.equal(none.answer?.headers['www-authenticate'], 'Bearer realm="regate"');
    assert.ok(none.error instanceof AuthnError);
    const expired = await check(rt, view('/files/a', { token: await reader({ exp: Number(NOW / 1_000_000_000n) - 3600 }) }));
    assert.equal(expired.reason, 'token_expired');
    assert.match(expired.answer?.headers['www-authenticate'] ?? '', /error="invalid_token"/);
  });

  it('a policy deny → 403 with the deny’s response headers; reasons only where the route exposes them', async () => {
    const token = await reader({ roles: ['guest'] });
    const hidden = await check(rt, view('/files/a', { token }));
    assert.equal(hidden.decision, 'deny');
    assert.equal(hidden.reason, 'policy_denied');
    assert.equal(hidden.answer?.status, 403);
    assert.deepEqual(hidden.answer?.headers, { 'x-why': 'policy' });
    assert.equal(hidden.answer?.problem.reasons, undefined);
    assert.deepEqual(hidden.reasons, ['readers only'], 'the decision log still has them');
    const exposed = await check(rt, view('/exposed', { token }));
    assert.deepEqual(exposed.answer?.problem.reasons, ['readers only']);
  });

  it('a garbage policy result → 500 error, evaluated, and the engine is as good as new', async () => {
    const token = await reader();
    const v = await check(rt, view('/broken', { token }));
    assert.equal(v.decision, 'error');
    assert.equal(v.answer?.status, 500);
    assert.ok(v.error instanceof PolicyError);
    assert.equal(v.evaluated, true);
    assert.equal(v.answer?.problem.detail, 'the policy could not decide; the request was denied', 'internals are not described to clients');
    assert.equal((await check(rt, view('/files/a', { token }))).decision, 'allow');
  });

  it('an allow whose policy headers cannot be sent is refused before anything is forwarded', async () => {
    const bad = await check(rt, view('/bad-header', { token: await reader() }));
    assert.equal(bad.decision, 'error');
    assert.equal(bad.reason, 'invalid_decision_header');
    assert.equal(bad.upstream, null);
    // A claim cannot smuggle a field: outside visible ASCII it is percent-encoded.
    const claim = await check(rt, view('/files/a', { token: await reader({ email: 'a\r\nx-admin: 1' }) }));
    assert.equal(claim.decision, 'allow');
    assert.equal(claim.upstream?.identity['x-email'], 'a%0D%0Ax-admin:%201');
  });
});

describe('check: WebSocket upgrades', () => {
  it('an upgrade on a websocket route is judged with input.request.websocket; a plain request has no such field', async () => {
    const up = await check(rt, view('/socket', { websocket: true, body: null }));
    assert.equal(up.decision, 'allow');
    assert.equal(up.input?.request.websocket, true);
    const plain = await check(rt, view('/socket'));
    assert.equal(plain.decision, 'allow');
    assert.equal('websocket' in plain.input!.request, false);
  });

  it('an upgrade on a route without websocket: true → 400 websocket_not_enabled before authentication, closing the connection', async () => {
    const v = await check(rt, view('/open', { websocket: true, body: null }));
    assert.equal(v.decision, 'deny');
    assert.equal(v.reason, 'websocket_not_enabled');
    assert.equal(v.answer?.status, 400);
    assert.equal(v.answer?.headers.connection, 'close');
    assert.equal(v.input, null, 'no policy input: refused before the policy');
    assert.equal(v.identity, null);
  });

  it('a refused handshake answers 426 with the version regate speaks', async () => {
    const v = await check(rt, view('/socket', { websocket: true, body: null, refused: new UpgradeRequiredError('websocket_version_unsupported', 'only 13') }));
    assert.equal(v.answer?.status, 426);
    assert.equal(v.answer?.headers['sec-websocket-version'], '13');
    assert.equal(v.answer?.headers.upgrade, 'websocket');
    assert.equal(v.route, null);
  });
});

describe('check: dry-run, shadow and the options regate eval uses', () => {
  it('a dry-run deny allows without the deny’s headers; the would-be decision is kept', async () => {
    const v = await check(rt, view('/watched', { token: await reader({ roles: [] }) }));
    assert.equal(v.decision, 'allow');
    assert.deepEqual(v.dryRun, { decision: 'deny', reason: 'policy_denied' });
    assert.deepEqual(v.upstream?.headers, {});
    assert.deepEqual(v.upstream?.responseHeaders, {});
    assert.equal((v.result as { allow: boolean }).allow, false, 'the policy result is still logged');
    const shadow = shadowOf(v);
    assert.equal(shadow?.agreement, 'disagree', 'the shadow compares with what would have been enforced');
  });

  it('enforceDryRun: the policy’s own decision', async () => {
    const v = await check(rt, view('/watched', { token: await reader({ roles: [] }) }), { enforceDryRun: true });
    assert.equal(v.decision, 'deny');
    assert.equal(v.dryRun, undefined);
  });

  it('a supplied identity stands in for authentication, except on auth: none routes', async () => {
    const supplied = { sub: 'bob', iss: TEST_ISSUER, issuerId: 'idp', roles: ['reader'], groups: [], scopes: [], tenant: '', claims: {}, exp: 0 };
    const v = await check(rt, view('/files/a'), { identity: () => supplied });
    assert.equal(v.decision, 'allow');
    assert.equal(v.identity, supplied);
    const open = await check(rt, view('/open'), { identity: () => supplied });
    assert.equal(open.identity, null);
  });

  it('no shadow before the policy stage', async () => {
    assert.equal(shadowOf(await check(rt, view('/watched'))), undefined);
  });
});

describe('outcomeOf', () => {
  it('keeps an allow that failed upstream an allow, with the failure’s reason', async () => {
    const v = await check(rt, view('/open'));
    const o = outcomeOf(v, { status: 502, error: new BadRequestError('duplicate_host', 'x') }, undefined);
    assert.equal(o.decision, 'allow');
    assert.equal(o.reason, 'duplicate_host');
    assert.equal(o.status, 502);
    assert.equal(o.entrypoint, 'test/authz/decision');
  });

  it('a client that went away before an allowed answer is client_closed', async () => {
    const v = await check(rt, view('/open'));
    assert.equal(outcomeOf(v, { status: 499, clientClosed: true }, undefined).reason, 'client_closed');
  });

  it('authn: failed for a bad token, verified with the issuer, skipped before routing', async () => {
    assert.deepEqual(outcomeOf(await check(rt, view('/files/a')), { status: 401 }, undefined).authn, { outcome: 'failed', reason: 'missing_token' });
    assert.deepEqual(outcomeOf(await check(rt, view('/files/a', { token: await reader() })), { status: 200 }, undefined).authn, { outcome: 'verified', issuer: 'idp' });
    assert.deepEqual(outcomeOf(await check(rt, view('/nowhere')), { status: 404 }, undefined).authn, { outcome: 'skipped' });
  });
});

describe('check: bugs', () => {
  it('a throwing authenticator is a 500 internal_error verdict, logged with the decision id', async () => {
    const broken = { ...rt, authenticator: { ...rt.authenticator, authenticate: () => Promise.reject(new TypeError('bug')) } } as Runtime;
    logged = [];
    const v = await check(broken, view('/files/a'));
    assert.equal(v.decision, 'error');
    assert.equal(v.reason, 'internal_error');
    assert.equal(v.answer?.status, 500);
    assert.equal((logged[0] as { decision_id: string }).decision_id, v.id);
  });
});
