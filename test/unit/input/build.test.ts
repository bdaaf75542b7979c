import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Identity } from '../../../src/authn/types.ts';
import type { RouteConfig } from '../../../src/config/types.ts';
import { BadRequestError } from '../../../src/errors.ts';
import { buildInput, hostOf, policyHeaders } from '../../../src/input/build.ts';
import { TimeInputBuilder } from '../../../src/input/time.ts';
import { compileHeaderPolicy } from '../../../src/upstream/headers.ts';

const route = {
  id: 'predict',
  attributes: { sensitivity: 'low' },
  identity_headers: { 'x-regate-sub': 'subject.sub', 'x-user-email': 'token.email' },
} as unknown as RouteConfig;
const headerPolicy = compileHeaderPolicy(route);

const identity: Identity = {
  sub: 'alice',
  iss: 'https://idp',
  issuerId: 'idp',
  roles: ['data_scientist'],
  groups: ['ml'],
  scopes: ['predict'],
  tenant: 'acme',
  claims: { sub: 'alice', iss: 'https://idp', exp: 2000000000 },
  exp: 2000000000,
};

function parts(over: Partial<Parameters<typeof buildInput>[0]> = {}): Parameters<typeof buildInput>[0] {
  return {
    requestId: 'req-1',
    method: 'POST',
    path: '/v1/models/sentiment/predict',
    params: { model: 'sentiment' },
    query: { debug: ['1'] },
    headers: { host: 'api.example.com', 'content-type': 'application/json', authorization: 'Bearer secret.jwt.here' },
    host: 'api.example.com',
    remoteAddr: '127.0.0.1',
    route,
    headerPolicy,
    identity,
    time: new TimeInputBuilder('UTC').build(1_700_000_000_000_000_000n),
    ...over,
  };
}

describe('buildInput', () => {
  it('builds the documented document', () => {
    const input = buildInput(parts());
    assert.deepEqual(input.request, {
      id: 'req-1',
      method: 'POST',
      path: '/v1/models/sentiment/predict',
      params: { model: 'sentiment' },
      query: { debug: ['1'] },
      headers: { host: 'api.example.com', 'content-type': 'application/json' },
      host: 'api.example.com',
      remote_addr: '127.0.0.1',
    });
    assert.deepEqual(input.route, { id: 'predict', attributes: { sensitivity: 'low' } });
    assert.deepEqual(input.subject, {
      authenticated: true,
      sub: 'alice',
      iss: 'https://idp',
      roles: ['data_scientist'],
      groups: ['ml'],
      scopes: ['predict'],
      tenant: 'acme',
    });
    assert.equal(input.token, identity.claims);
    assert.equal(input.time.now_ns, 1_700_000_000_000_000_000n);
  });

  it('gives anonymous requests an unauthenticated subject with empty lists, never null', () => {
    const input = buildInput(parts({ identity: null }));
    assert.equal(input.subject.authenticated, false);
    assert.deepEqual([...input.subject.roles], []);
    assert.deepEqual(input.token, {});
  });
});

describe('policyHeaders', () => {
  it('never shows credentials to the policy', () => {
    const h = policyHeaders({ authorization: 'Bearer x', 'proxy-authorization': 'Basic y', cookie: 'sid=1', accept: 'a' }, headerPolicy);
    assert.deepEqual(h, { accept: 'a' });
  });
  it('hides hop-by-hop headers and every header named in Connection (the upstream never gets them)', () => {
    const h = policyHeaders({ connection: 'keep-alive, X-Secret-Hop', 'x-secret-hop': '1', 'keep-alive': 'timeout=5', te: 'trailers', accept: 'a' }, headerPolicy);
    assert.deepEqual(h, { accept: 'a' });
  });
  it('hides every client-sent value regate drops or replaces: a policy cannot allow on a forged one', () => {
    const h = policyHeaders(
      {
        host: 'api.example.com',
        'x-forwarded-for': '10.0.0.1',
        'x-forwarded-host': 'admin.example.com',
        forwarded: 'for=10.0.0.1',
        'x-real-ip': '10.0.0.1',
        'x-request-id': 'mine',
        'x-regate-sub': 'mallory',
        'x_regate_sub': 'mallory',
        'x-user-email': 'ceo@example.com',
        'x_user_email': 'ceo@example.com',
        'x-regate-admin': 'true',
        expect: '100-continue',
        'x-http-method-override': 'DELETE',
        'x-original-url': '/admin',
        'content-type': 'application/json',
        'x-custom': 'kept',
      },
      headerPolicy,
    );
    assert.deepEqual(h, { host: 'api.example.com', 'content-type': 'application/json', 'x-custom': 'kept' });
  });
  it('joins repeated headers', () => {
    assert.deepEqual(policyHeaders({ 'x-list': ['a', 'b'] } as never, headerPolicy), { 'x-list': 'a, b' });
  });
});

describe('hostOf', () => {
  it('normalizes like the router: lower-case, no port, no trailing dot', () => {
    assert.equal(hostOf({ host: 'API.Example.COM:8443' }), 'api.example.com');
    assert.equal(hostOf({ host: 'api.example.com.' }), 'api.example.com');
    assert.equal(hostOf({ host: '[::1]:8080' }), '[::1]');
    assert.equal(hostOf({}), '');
    assert.equal(hostOf({ host: '10.0.0.1:80' }), '10.0.0.1');
    assert.equal(hostOf({ host: 'svc_internal.local' }), 'svc_internal.local');
  });
  it('refuses a Host an upstream could read as another host (route bypass)', () => {
    for (const bad of ['admin.example.com,x', 'x,admin.example.com', 'a.com@b.com', 'a.com b.com', 'a.com/x', 'a.com:80:80', '[::1', '-a.com', ':80', 'a.com:']) {
      assert.throws(() => hostOf({ host: bad }), (e: unknown) => e instanceof BadRequestError && e.reason === 'invalid_host', bad);
    }
  });
});
