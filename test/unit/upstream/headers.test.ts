import assert from 'node:assert/strict';
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { RouteConfig } from '../../../src/config/types.ts';
import { AuthnError, BadRequestError, PolicyError } from '../../../src/errors.ts';
import { policyHeaders } from '../../../src/input/build.ts';
import { buildUpstreamHeaders, checkResponseHeaders, compileHeaderPolicy, filterResponseHeaders, HOP_BY_HOP, TRACE_CONTEXT_FIELDS, type UpstreamHeaderOptions, isForwardedClientField, strippedNames } from '../../../src/upstream/headers.ts';

function route(identity: Record<string, string> = { 'X-Regate-Sub': 'subject.sub', 'X-Tenant': 'subject.tenant' }): RouteConfig {
  return {
    id: 'r1',
    match: { methods: ['GET'], path: '/x' },
    upstream: 'up',
    auth: 'required',
    attributes: {},
    identity_headers: identity,
    forward_authorization: false,
    grpc: false,
    expose_reasons: false,
    websocket: false,
    dry_run: false,
  };
}

/**
 * A real IncomingMessage fed the way node's parser feeds it, so `req.headers`
 * is node's own view of `rawHeaders` (first-wins singletons, joined lists).
 * forward.test.ts covers the same paths through a real socket and parser.
 */
function request(rawHeaders: string[]): IncomingMessage {
  const req = new IncomingMessage(new Socket());
  (req as unknown as { _addHeaderLines(h: string[], n: number): void })._addHeaderLines(rawHeaders, rawHeaders.length);
  return req;
}

const policy = compileHeaderPolicy(route());

function build(rawHeaders: string[], opts: Partial<UpstreamHeaderOptions> = {}) {
  return buildUpstreamHeaders(request(['Host', 'api.example.com', ...rawHeaders]), {
    policy,
    identityValues: { 'X-Regate-Sub': 'alice', 'X-Tenant': 'acme' },
    decisionHeaders: {},
    requestId: 'req-1',
    clientIp: '203.0.113.7',
    proto: 'https',
    host: 'api.example.com',
    forwardAuthorization: false,
    ...opts,
  });
}

describe('buildUpstreamHeaders: hop-by-hop (RFC 9110 §7.6.1)', () => {
  for (const [name, value] of [
    ['Connection', 'keep-alive'],
    ['Keep-Alive', 'timeout=5'],
    ['Proxy-Connection', 'keep-alive'],
    ['TE', 'trailers'],
    ['Trailer', 'x-checksum'],
    ['Transfer-Encoding', 'chunked'],
    ['Upgrade', 'websocket'],
    ['Proxy-Authorization', 'Basic Zm9vOmJhcg=='],
    ['Proxy-Authenticate', 'Basic'],
    ['HTTP2-Settings', 'AAMAAABkAAQAAP__'],
  ] as const) {
    it(`drops ${name}`, () => {
      const out = build([name, value]);
      assert.equal(out[name.toLowerCase()], undefined);
    });
  }

  it('HOP_BY_HOP lists the RFC 9110 fields', () => {
    for (const n of ['connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'keep-alive']) {
      assert.ok(HOP_BY_HOP.includes(n), n);
    }
  });

  it('drops every field the client nominated in Connection, in any spelling', () => {
    const out = build(['Connection', 'close, X-Secret-Hop', 'Connection', 'x_other', 'X-Secret-Hop', '1', 'x_secret_hop', '2', 'X-Other', '3', 'X-Kept', '4']);
    assert.equal(out['x-secret-hop'], undefined);
    assert.equal(out['x_secret_hop'], undefined);
    assert.equal(out['x-other'], undefined);
    assert.equal(out['x-kept'], '4');
  });

  it('ignores a Connection nomination of Content-Length: framing stays as authorized', () => {
    const out = build(['Connection', 'content-length', 'Content-Length', '5']);
    assert.equal(out['content-length'], '5');
  });

  it('a Connection nomination cannot remove what regate sets', () => {
    const out = build(['Connection', 'x-forwarded-for, x-regate-sub, x-request-id']);
    assert.equal(out['x-forwarded-for'], '203.0.113.7');
    assert.equal(out['x-regate-sub'], 'alice');
    assert.equal(out['x-request-id'], 'req-1');
  });
});

describe('buildUpstreamHeaders: identity headers cannot be spoofed', () => {
  const spellings = [
    'X-Regate-Sub',
    'x-regate-sub',
    'X-REGATE-SUB',
    'x_regate_sub',
    'X_Regate_Sub',
    'X-Regate_Sub',
    'x_regate-sub',
    'X-Tenant',
    'x_tenant',
    'X_TENANT',
  ];
  for (const spelling of spellings) {
    it(`removes a client-sent ${spelling}`, () => {
      const out = build([spelling, 'mallory']);
      assert.equal(out['x-regate-sub'], 'alice');
      assert.equal(out['x-tenant'], 'acme');
      for (const [k, v] of Object.entries(out)) {
        assert.notEqual(v, 'mallory', `${k} carried the spoofed value`);
      }
    });
  }

  it('an identity header with no value is absent, never the client copy', () => {
    const out = build(['X-Tenant', 'evil', 'x_tenant', 'evil'], { identityValues: { 'X-Regate-Sub': 'alice' } });
    assert.equal(out['x-tenant'], undefined);
    assert.equal(out['x_tenant'], undefined);
  });

  it('drops the reserved x-regate- namespace in any spelling', () => {
    const out = build(['X-Regate-Admin', 'true', 'x_regate_role', 'admin', 'X-Regate_Anything', '1']);
    const reserved = Object.keys(out).filter((k) => k.replaceAll('_', '-').startsWith('x-regate-'));
    assert.deepEqual(reserved, ['x-regate-sub']);
  });

  it('drops an underscore spelling of any field regate treats specially', () => {
    const out = build(['Content_Length', '99', 'transfer_encoding', 'chunked', 'x_forwarded_host', 'evil', 'Authorization_', 'x', 'Host_', 'h']);
    assert.equal(out['content_length'], undefined);
    assert.equal(out['transfer_encoding'], undefined);
    assert.equal(out['x_forwarded_host'], undefined);
    // Not a fold of a special name: kept as-is.
    assert.equal(out['authorization_'], 'x');
    assert.equal(out['host_'], 'h');
  });

  it('property: no spelling of an identity header survives', () => {
    const variant = fc
      .tuple(fc.constantFrom('x-regate-sub', 'x-tenant'), fc.array(fc.boolean(), { minLength: 16, maxLength: 16 }), fc.array(fc.boolean(), { minLength: 16, maxLength: 16 }))
      .map(([name, upper, underscore]) =>
        [...name].map((c, i) => (c === '-' && underscore[i] ? '_' : upper[i] ? c.toUpperCase() : c)).join(''),
      );
    fc.assert(
      fc.property(fc.array(variant, { minLength: 1, maxLength: 4 }), (names) => {
        const out = build(names.flatMap((n) => [n, 'spoofed']));
        for (const [k, v] of Object.entries(out)) {
          assert.ok(!(Array.isArray(v) ? v : [v]).includes('spoofed'), `${k} survived`);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('buildUpstreamHeaders: method and URL overrides', () => {
  it('drops override headers in any spelling: the upstream must run the method and path the policy judged', () => {
    const names = ['X-HTTP-Method-Override', 'x_http_method_override', 'X-HTTP-Method', 'X-Method-Override', 'X-Original-URL', 'X-Rewrite-URL', 'X-Original-Method'];
    const route = { id: 'r', identity_headers: {} } as unknown as Parameters<typeof compileHeaderPolicy>[0];
    const policy = compileHeaderPolicy(route);
    for (const name of names) {
      const lower = name.toLowerCase();
      assert.equal(isForwardedClientField(lower, policy, null), false, name);
    }
    assert.equal(isForwardedClientField('x-custom', policy, null), true);
  });
});

describe('buildUpstreamHeaders: forwarding chain', () => {
  it('replaces every client-sent forwarding field with regate values', () => {
    const out = build([
      'X-Forwarded-For',
      '10.0.0.1, 127.0.0.1',
      'x_forwarded_for',
      '10.0.0.2',
      'Forwarded',
      'for=10.0.0.3',
      'X-Real-IP',
      '10.0.0.4',
      'X-Forwarded-Host',
      'evil.example',
      'X-Forwarded-Proto',
      'http',
      'X-Forwarded-Port',
      '1',
      'X-Forwarded-Prefix',
      '/admin',
      'X-Request-Id',
      'client-chosen',
    ]);
    assert.equal(out['x-forwarded-for'], '203.0.113.7');
    assert.equal(out['x-forwarded-host'], 'api.example.com');
    assert.equal(out['x-forwarded-proto'], 'https');
    assert.equal(out['x-request-id'], 'req-1');
    for (const k of ['forwarded', 'x-real-ip', 'x-forwarded-port', 'x-forwarded-prefix', 'x_forwarded_for']) assert.equal(out[k], undefined, k);
  });

  it('drops Host (undici sets the upstream origin) and refuses a duplicate Host (RFC 9112 §3.2)', () => {
    assert.equal(build([]).host, undefined);
    assert.throws(() => build(['Host', 'other.example']), (e: unknown) => e instanceof BadRequestError && e.reason === 'duplicate_host');
  });

  it('omits X-Forwarded-For / -Host rather than sending them empty', () => {
    const out = build([], { clientIp: '', host: '' });
    assert.equal(out['x-forwarded-for'], undefined);
    assert.equal(out['x-forwarded-host'], undefined);
  });

  it('drops Expect: node already answered 100-continue and undici refuses it', () => {
    assert.equal(build(['Expect', '100-continue']).expect, undefined);
  });
});

describe('buildUpstreamHeaders: end-to-end fields', () => {
  it('drops Authorization unless the route forwards it; then forwards the first one only', () => {
    assert.equal(build(['Authorization', 'Bearer abc']).authorization, undefined);
    const out = build(['Authorization', 'Bearer abc', 'Authorization', 'Bearer other'], { forwardAuthorization: true });
    assert.equal(out.authorization, 'Bearer abc');
  });

  it('keeps traceparent and tracestate untouched', () => {
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const out = build(['traceparent', tp, 'tracestate', 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7']);
    assert.equal(out.traceparent, tp);
    assert.equal(out.tracestate, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
  });

  it('joins repeated fields in order, exactly as the policy input shows them (issue 9: two X-Tenant)', () => {
    const raw = ['X-Multi', 'a', 'Cookie', 'a=1', 'x-multi', 'b', 'Cookie', 'b=2', 'Accept', 'text/html', 'Accept', 'application/json', 'X-Tenant', 'acme', 'x-tenant', 'globex'];
    const plain = route({});
    const policy = compileHeaderPolicy(plain);
    const out = build(raw, { policy, identityValues: {} });
    assert.equal(out['x-multi'], 'a, b');
    assert.equal(out.cookie, 'a=1; b=2');
    assert.equal(out.accept, 'text/html, application/json');
    assert.equal(out['x-tenant'], 'acme, globex');
    // The policy's view of the same request: node's own join.
    const shown = policyHeaders(request(raw).headers, policy);
    // (Cookie is not shown to the policy at all.)
    for (const name of ['x-multi', 'accept', 'x-tenant']) assert.equal(out[name], shown[name], name);
  });

  it('keeps only the first of the fields node deduplicates (what authn and the policy saw)', () => {
    const out = build(['Content-Type', 'application/json', 'Content-Type', 'text/plain', 'User-Agent', 'a', 'User-Agent', 'b']);
    assert.equal(out['content-type'], 'application/json');
    assert.equal(out['user-agent'], 'a');
  });

  it('keeps Content-Length; drops it and Transfer-Encoding for a chunked request', () => {
    assert.equal(build(['Content-Length', '12'])['content-length'], '12');
    const chunked = build(['Transfer-Encoding', 'chunked']);
    assert.equal(chunked['transfer-encoding'], undefined);
    assert.equal(chunked['content-length'], undefined);
  });

  it('refuses a transfer coding other than chunked (node accepts `gzip, chunked`)', () => {
    assert.throws(() => build(['Transfer-Encoding', 'gzip, chunked']), (e: unknown) => e instanceof BadRequestError && e.reason === 'unsupported_transfer_coding');
  });

  it('survives a header named __proto__', () => {
    const out = build(['__proto__', 'x', 'constructor', 'y']);
    assert.equal(Object.getOwnPropertyDescriptor(out, '__proto__')?.value, 'x');
    assert.equal(out.constructor, 'y');
  });
});

describe('buildUpstreamHeaders: identity and policy values', () => {
  for (const bad of ['a\r\nx-admin: true', 'a\nb', 'a\0b', 'a\x7fb', 'caf\u00e9\u4e16']) {
    it(`refuses identity value ${JSON.stringify(bad)} (fail closed)`, () => {
      assert.throws(
        () => build([], { identityValues: { 'X-Regate-Sub': bad } }),
        (e: unknown) => e instanceof AuthnError && e.reason === 'invalid_claim' && !e.message.includes(bad),
      );
    });
  }

  it('a value the route does not configure is a bug (TypeError)', () => {
    assert.throws(() => build([], { identityValues: { 'X-Other': 'v' } }), TypeError);
  });

  it('sets policy headers and removes client copies in every spelling', () => {
    const out = build(['X-Quota', 'infinite', 'x_quota', 'infinite', 'X-QUOTA', 'infinite'], { decisionHeaders: { 'X-Quota': '100' } });
    assert.equal(out['x-quota'], '100');
    assert.equal(out['x_quota'], undefined);
  });

  for (const name of ['Host', 'Content-Length', 'Transfer-Encoding', 'Connection', 'X-Forwarded-For', 'x_forwarded_for', 'X-Forwarded-Anything', 'X-Request-Id', 'Authorization', 'x-regate-sub', 'X_Tenant']) {
    it(`refuses a policy header named ${name}`, () => {
      assert.throws(() => build([], { decisionHeaders: { [name]: 'v' } }), (e: unknown) => e instanceof PolicyError && e.reason === 'invalid_decision_header');
    });
  }

  it('refuses an invalid policy header name or value', () => {
    assert.throws(() => build([], { decisionHeaders: { 'X Bad': 'v' } }), PolicyError);
    assert.throws(() => build([], { decisionHeaders: { 'X-Ok': 'a\r\nb' } }), PolicyError);
  });
});

describe('compileHeaderPolicy', () => {
  for (const name of ['Host', 'Content-Length', 'Connection', 'X-Forwarded-For', 'x_forwarded_user', 'Authorization', 'bad name', '']) {
    it(`refuses identity header ${JSON.stringify(name)}`, () => {
      assert.throws(() => compileHeaderPolicy(route({ [name]: 'subject.sub' })), TypeError);
    });
  }
  it('refuses two identity headers that fold to the same name', () => {
    assert.throws(() => compileHeaderPolicy(route({ 'X-User': 'subject.sub', x_user: 'subject.iss' })), TypeError);
  });
  it('lists lower-case identity names in order', () => {
    assert.deepEqual(policy.identityHeaders, ['x-regate-sub', 'x-tenant']);
  });
});

describe('filterResponseHeaders', () => {
  it('drops hop-by-hop and Connection-nominated fields, keeps the rest and repeated Set-Cookie', () => {
    const out = filterResponseHeaders({
      connection: 'keep-alive, x-hop',
      'keep-alive': 'timeout=5',
      'x-hop': '1',
      'transfer-encoding': 'chunked',
      'content-length': '10',
      upgrade: 'h2c',
      'proxy-authenticate': 'Basic',
      trailer: 'x-sum',
      'set-cookie': ['a=1', 'b=2'],
      'content-type': 'text/plain',
      'x-none': undefined,
    });
    assert.deepEqual({ ...out }, { 'set-cookie': ['a=1', 'b=2'], 'content-type': 'text/plain' });
  });

  it('keeps Content-Length when the response is not chunked', () => {
    assert.equal(filterResponseHeaders({ 'content-length': '10' })['content-length'], '10');
  });
});

describe('checkResponseHeaders', () => {
  it('lower-cases names', () => {
    assert.deepEqual({ ...checkResponseHeaders({ 'X-Policy': 'v1' }) }, { 'x-policy': 'v1' });
    assert.equal(checkResponseHeaders({}), null);
  });
  for (const [name, value] of [
    ['Content-Length', '1'],
    ['Transfer-Encoding', 'chunked'],
    ['Connection', 'close'],
    ['X Bad', 'v'],
    ['X-Ok', 'a\nb'],
  ] as const) {
    it(`refuses ${name}: ${JSON.stringify(value)}`, () => {
      assert.throws(() => checkResponseHeaders({ [name]: value }), PolicyError);
    });
  }
});

describe('buildUpstreamHeaders: trace context (tracing on)', () => {
  const traced = compileHeaderPolicy(route(), [], { tracing: true });
  const trace = { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'rojo=1' };
  const client = [
    'traceparent', '00-11111111111111111111111111111111-2222222222222222-01',
    'tracestate', 'evil=1',
    'X-B3-TraceId', '80f198ee56343ba864fe8b2a57d3eff7',
    'x_b3_spanid', 'e457b5a2e4d86bd1',
    'b3', '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1',
    'uber-trace-id', 'abc:def:0:1',
    'X-Cloud-Trace-Context', '105445aa7843bc8bf206b12000100000/1;o=1',
    'X-Amzn-Trace-Id', 'Root=1-5759e988-bd862e3fe1be46a994272793',
    'x-datadog-trace-id', '1',
    'baggage', 'user=alice',
  ];

  it('drops every client trace-context field, in any spelling, and sets regate’s traceparent and tracestate', () => {
    const out = buildUpstreamHeaders(request(['Host', 'api.example.com', ...client]), {
      policy: traced,
      identityValues: {},
      decisionHeaders: {},
      requestId: 'req-1',
      clientIp: '203.0.113.7',
      proto: 'http',
      host: 'api.example.com',
      forwardAuthorization: false,
      trace,
    });
    assert.equal(out.traceparent, trace.traceparent);
    assert.equal(out.tracestate, 'rojo=1');
    for (const name of TRACE_CONTEXT_FIELDS.filter((n) => n !== 'traceparent' && n !== 'tracestate')) assert.equal(out[name], undefined, name);
    assert.equal(out['x_b3_spanid'], undefined);
    // Baggage is application data, not trace context: it passes.
    assert.equal(out.baggage, 'user=alice');
  });

  it('does not show the dropped fields to the policy, and refuses a policy that sets one', () => {
    assert.equal(isForwardedClientField('traceparent', traced, null), false);
    assert.equal(isForwardedClientField('x-b3-traceid', traced, null), false);
    assert.equal(isForwardedClientField('traceparent', policy, null), true);
    assert.throws(
      () =>
        buildUpstreamHeaders(request(['Host', 'h']), {
          policy: traced,
          identityValues: {},
          decisionHeaders: { traceparent: '00-11111111111111111111111111111111-2222222222222222-01' },
          requestId: 'r',
          clientIp: '',
          proto: 'http',
          host: 'h',
          forwardAuthorization: false,
          trace,
        }),
      PolicyError,
    );
  });

  it('with tracing off, trace-context fields pass unchanged (regate is transparent)', () => {
    const out = build(client);
    assert.equal(out.traceparent, '00-11111111111111111111111111111111-2222222222222222-01');
    assert.equal(out['x-b3-traceid'], '80f198ee56343ba864fe8b2a57d3eff7');
  });
});

describe('headers any route sets are stripped on every route (issue 9 point 4)', () => {
  const open = { ...route({}), id: 'open', auth: 'none' } as RouteConfig;
  const authed = route({ 'X-User-Id': 'subject.sub' });
  const config = {
    routes: [open, authed],
    request_headers_to_remove: ['x-internal-auth'],
    upstreams: { up: { request_headers_to_remove: ['X-Legacy-User'] } },
  } as unknown as Parameters<typeof strippedNames>[0];

  it('strippedNames: every route’s identity headers, the global and the upstream list, minus the route’s own', () => {
    assert.deepEqual(new Set(strippedNames(config, open)), new Set(['x-user-id', 'x-internal-auth', 'x-legacy-user']));
    assert.deepEqual(new Set(strippedNames(config, authed)), new Set(['x-internal-auth', 'x-legacy-user']));
  });

  it('a route without identity headers drops them in every spelling, and the policy is not shown them', () => {
    const policy = compileHeaderPolicy(open, strippedNames(config, open));
    const raw = ['X-User-Id', 'admin', 'x_user_id', 'admin', 'X-INTERNAL-AUTH', '1', 'x_legacy_user', 'root', 'X-Kept', 'yes'];
    const out = build(raw, { policy, identityValues: {} });
    for (const name of ['x-user-id', 'x_user_id', 'x-internal-auth', 'x_legacy_user', 'x-legacy-user']) assert.equal(out[name], undefined, name);
    assert.equal(out['x-kept'], 'yes');
    for (const name of ['x-user-id', 'x_user_id', 'x-internal-auth', 'x_legacy_user']) assert.equal(isForwardedClientField(name, policy, null), false, name);
    assert.equal(isForwardedClientField('x-kept', policy, null), true);
  });

  it('names regate needs cannot be stripped', () => {
    for (const name of ['Host', 'content-length', 'Authorization', 'transfer_encoding']) assert.throws(() => compileHeaderPolicy(open, [name]), TypeError, name);
  });
});

describe('credential headers (routes[].credentials, issue 15)', () => {
  const withCredentials = compileHeaderPolicy(route(), [], { credentialHeaders: ['Authorization', 'X-Api-Key'] });
  const credentials = [
    { header: 'authorization', value: 'Bearer regate-held' },
    { header: 'x-api-key', value: 'k-1' },
  ];

  it('the client’s copies are dropped in every spelling, repeated or not, and regate’s values set last', () => {
    const out = build(['Authorization', 'Bearer client', 'X-Api-Key', 'a', 'x-api-key', 'b', 'X_Api_Key', 'c', 'x_API-KEY', 'd'], { policy: withCredentials, credentials, forwardAuthorization: true });
    assert.equal(out.authorization, 'Bearer regate-held');
    assert.equal(out['x-api-key'], 'k-1');
    assert.equal(out.x_api_key, undefined);
    assert.equal(Object.keys(out).filter((k) => k.replaceAll('_', '-') === 'x-api-key').length, 1);
  });

  it('a credential the request does not carry (the policy chose others) still strips the client’s copy', () => {
    const out = build(['Authorization', 'Bearer client', 'X-Api-Key', 'a'], { policy: withCredentials, credentials: [credentials[1]!] });
    assert.equal(out.authorization, undefined);
    assert.equal(out['x-api-key'], 'k-1');
    const none = build(['X-Api-Key', 'a'], { policy: withCredentials, credentials: [] });
    assert.equal(none['x-api-key'], undefined);
  });

  it('the policy input never shows a client copy; a policy may not set a credential header', () => {
    for (const name of ['x-api-key', 'x_api_key', 'authorization']) assert.equal(isForwardedClientField(name, withCredentials, null), false, name);
    assert.throws(() => build([], { policy: withCredentials, decisionHeaders: { 'X-Api-Key': 'mine' } }), (e: unknown) => e instanceof PolicyError && e.reason === 'invalid_decision_header');
    assert.throws(() => build([], { policy: withCredentials, decisionHeaders: { X_Api_Key: 'mine' } }), (e: unknown) => e instanceof PolicyError && e.reason === 'invalid_decision_header');
  });

  it('property: whatever spellings, repeats and Connection nominations a client sends, the upstream sees exactly regate’s values', () => {
    const spelling = fc.constantFrom('Authorization', 'authorization', 'AUTHORIZATION', 'X-Api-Key', 'x_api_key', 'X_API-KEY', 'x-API_key');
    fc.assert(
      fc.property(fc.array(spelling, { minLength: 1, maxLength: 6 }), fc.boolean(), fc.subarray(credentials), (names, nominate, chosen) => {
        const raw = names.flatMap((n, i) => [n, `client-${i}`]);
        if (nominate) raw.push('Connection', names.join(', '));
        const out = build(raw, { policy: withCredentials, credentials: chosen, forwardAuthorization: true });
        for (const [k, v] of Object.entries(out)) assert.ok(!(Array.isArray(v) ? v : [v]).some((x) => x.startsWith('client-')), `${k} carried a client value`);
        for (const c of chosen) assert.equal(out[c.header], c.value);
      }),
      { numRuns: 300 },
    );
  });

  it('a header that is not the route’s credential header is a bug (TypeError), never sent', () => {
    assert.throws(() => build([], { policy: withCredentials, credentials: [{ header: 'x-other', value: 'v' }] }), TypeError);
  });

  it('compile refuses headers regate owns, identity collisions and two credentials on one header', () => {
    for (const name of ['Host', 'content-length', 'Connection', 'x-forwarded-for', 'x-regate-sub', 'Cookie', 'x-request-id', 'bad name']) {
      assert.throws(() => compileHeaderPolicy(route({}), [], { credentialHeaders: [name] }), TypeError, name);
    }
    assert.throws(() => compileHeaderPolicy(route({ 'X-Api-Key': 'route.id' }), [], { credentialHeaders: ['x_api_key'] }), TypeError);
    assert.throws(() => compileHeaderPolicy(route({}), [], { credentialHeaders: ['X-Api-Key', 'x_api_key'] }), TypeError);
    assert.deepEqual(withCredentials.credentialHeaders, ['authorization', 'x-api-key']);
  });
});
