import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RouteConfig } from '../../../src/config/types.ts';
import { MethodNotAllowedError, RouteNotFoundError } from '../../../src/errors.ts';
import { canonicalizeTarget } from '../../../src/http/canonicalize.ts';
import { compileRoutes, normalizeHost, validateHostPattern, validateTemplate, WILDCARD_PARAM, type Router } from '../../../src/http/router.ts';

function route(id: string, path: string, methods: readonly string[] = ['GET'], host?: string): RouteConfig {
  return {
    id,
    match: host === undefined ? { methods, path } : { methods, path, host },
    upstream: 'u',
    auth: 'required',
    attributes: {},
    identity_headers: {},
    forward_authorization: false,
    grpc: false,
    expose_reasons: false,
    websocket: false,
    dry_run: false,
  };
}

function rec(o: Record<string, string>): Record<string, string> {
  return Object.assign(Object.create(null) as Record<string, string>, o);
}

/** Match a raw target the way the pipeline does: canonicalize, then route. */
function hit(router: Router, target: string, method = 'GET', host = 'api.example.com'): { id: string; params: Record<string, string> } {
  const m = router.match(method, host, canonicalizeTarget(target).segments);
  return { id: m.route.id, params: m.params };
}

function notFound(router: Router, target: string, method = 'GET', host = 'api.example.com'): void {
  assert.throws(() => router.match(method, host, canonicalizeTarget(target).segments), RouteNotFoundError, target);
}

function notAllowed(router: Router, target: string, method: string, allow: readonly string[], host = 'api.example.com'): void {
  assert.throws(
    () => router.match(method, host, canonicalizeTarget(target).segments),
    (err: unknown) => {
      assert.ok(err instanceof MethodNotAllowedError, String(err));
      assert.deepEqual(err.allow, allow);
      assert.equal(err.status, 405);
      return true;
    },
  );
}

describe('router: templates and params', () => {
  const router = compileRoutes([
    route('root', '/'),
    route('predict', '/v1/models/{model}/predict', ['POST']),
    route('model', '/v1/models/{model}'),
    route('files', '/files/{path*}'),
    route('static', '/static/*'),
    route('slash', '/dir/'),
    route('noslash', '/dir'),
    route('two', '/t/{a}/{b}'),
    route('unicode', '/café/{x}'),
    route('spaced', '/sent iment'),
  ]);

  it('matches literals and the root', () => {
    assert.deepEqual(hit(router, '/'), { id: 'root', params: rec({}) });
    assert.deepEqual(hit(router, '/sent%20iment'), { id: 'spaced', params: rec({}) });
    notFound(router, '/v1');
    notFound(router, '/V1/models/x');
  });

  it('captures {param} as exactly one non-empty decoded segment', () => {
    assert.deepEqual(hit(router, '/v1/models/sent%20iment/predict', 'POST'), { id: 'predict', params: rec({ model: 'sent iment' }) });
    assert.deepEqual(hit(router, '/v1/models/a%252e'), { id: 'model', params: rec({ model: 'a%2e' }) });
    assert.deepEqual(hit(router, '/t/1/2'), { id: 'two', params: rec({ a: '1', b: '2' }) });
    assert.deepEqual(hit(router, '/caf%C3%A9/%E6%97%A5'), { id: 'unicode', params: rec({ x: '日' }) });
    // '/v1/models/' has an empty last segment: {model} does not match it.
    notFound(router, '/v1/models/');
    notFound(router, '/v1/models/a/b');
    notFound(router, '/t/1');
  });

  it('captures {name*} and /* as the rest joined with "/"', () => {
    assert.deepEqual(hit(router, '/files/a/b/c.txt'), { id: 'files', params: rec({ path: 'a/b/c.txt' }) });
    assert.deepEqual(hit(router, '/files/a/b/'), { id: 'files', params: rec({ path: 'a/b/' }) });
    assert.deepEqual(hit(router, '/files/x'), { id: 'files', params: rec({ path: 'x' }) });
    // Zero segments.
    assert.deepEqual(hit(router, '/files'), { id: 'files', params: rec({ path: '' }) });
    assert.deepEqual(hit(router, '/files/'), { id: 'files', params: rec({ path: '' }) });
    assert.deepEqual(hit(router, '/static/css/a%20b.css'), { id: 'static', params: rec({ [WILDCARD_PARAM]: 'css/a b.css' }) });
    assert.equal(WILDCARD_PARAM, '*');
  });

  it('treats the trailing slash as significant', () => {
    assert.equal(hit(router, '/dir/').id, 'slash');
    assert.equal(hit(router, '/dir').id, 'noslash');
  });

  it('returns null-prototype params', () => {
    const r = compileRoutes([route('p', '/{__proto__}/{constructor}')]);
    const { params } = hit(r, '/a/b');
    assert.equal(Object.getPrototypeOf(params), null);
    assert.equal(params['__proto__'], 'a');
    assert.equal(params['constructor'], 'b');
  });

  it('accepts segments that did not come from the canonicalizer', () => {
    const r = compileRoutes([route('all', '/{rest*}')]);
    assert.deepEqual(r.match('GET', '', []).params, rec({ rest: '' }));
  });
});

describe('router: precedence', () => {
  it('prefers literal over {param} over wildcard, regardless of config order', () => {
    const router = compileRoutes([
      route('wild', '/v1/*'),
      route('rest', '/v1/{rest*}'),
      route('param', '/v1/{a}'),
      route('literal', '/v1/health'),
    ]);
    assert.equal(hit(router, '/v1/health').id, 'literal');
    assert.equal(hit(router, '/v1/other').id, 'param');
    // Both wildcards have the same shape: the first in config order wins.
    assert.equal(hit(router, '/v1/a/b').id, 'wild');
    assert.equal(hit(router, '/v1').id, 'wild');
  });

  it('compares segment by segment from the left', () => {
    const router = compileRoutes([
      route('pl', '/{a}/x'),
      route('lp', '/a/{b}'),
      route('pp', '/{a}/{b}'),
      route('lw', '/a/*'),
    ]);
    // '/a/x' matches all four. First segment: a literal ('lp', 'lw') beats a param;
    // second segment: 'lp''s param beats 'lw''s wildcard, though 'pl' has a literal there.
    assert.equal(hit(router, '/a/x').id, 'lp');
    assert.equal(hit(router, '/b/x').id, 'pl');
    assert.equal(hit(router, '/b/y').id, 'pp');
    assert.equal(hit(router, '/a/y/z').id, 'lw');
  });

  it('prefers an exact end over a wildcard matching zero segments', () => {
    const router = compileRoutes([route('rest', '/a/{r*}'), route('exact', '/a')]);
    assert.equal(hit(router, '/a').id, 'exact');
    assert.equal(hit(router, '/a/').id, 'rest');
  });

  it('breaks ties of the same shape by config order', () => {
    const router = compileRoutes([route('first', '/{x}'), route('second', '/{y}')]);
    assert.deepEqual(hit(router, '/v'), { id: 'first', params: rec({ x: 'v' }) });
  });

  it('prefers a more specific template even when the first segment index differs', () => {
    const router = compileRoutes([route('catchall', '/*'), route('models', '/v1/models/{m}'), route('any', '/{a}/models/{m}')]);
    assert.equal(hit(router, '/v1/models/x').id, 'models');
    assert.equal(hit(router, '/v2/models/x').id, 'any');
    assert.equal(hit(router, '/v1/other').id, 'catchall');
    assert.deepEqual(hit(router, '/').params, rec({ '*': '' }));
  });
});

describe('router: hosts', () => {
  const router = compileRoutes([
    route('any', '/x'),
    route('wild', '/x', ['GET'], '*.example.com'),
    route('exact', '/x', ['GET'], 'API.example.com'),
    route('any-rest', '/{r*}'),
    route('admin-host', '/{r*}', ['GET'], 'admin.example.com'),
  ]);

  it('prefers exact host > one-label wildcard > no host', () => {
    assert.equal(hit(router, '/x', 'GET', 'api.example.com').id, 'exact');
    assert.equal(hit(router, '/x', 'GET', 'www.example.com').id, 'wild');
    assert.equal(hit(router, '/x', 'GET', 'other.test').id, 'any');
  });

  it('matches the wildcard on exactly one label', () => {
    assert.equal(hit(router, '/x', 'GET', 'example.com').id, 'any');
    assert.equal(hit(router, '/x', 'GET', 'a.b.example.com').id, 'any');
    assert.equal(hit(router, '/x', 'GET', '.example.com').id, 'any');
    assert.equal(hit(router, '/x', 'GET', 'aexample.com').id, 'any');
  });

  it('compares hosts case-insensitively, without port or trailing dot', () => {
    assert.equal(hit(router, '/x', 'GET', 'API.Example.COM:8443').id, 'exact');
    assert.equal(hit(router, '/x', 'GET', 'api.example.com.').id, 'exact');
    assert.equal(hit(router, '/x', 'GET', 'api.example.com.:443').id, 'exact');
    assert.equal(hit(router, '/x', 'GET', 'WWW.EXAMPLE.COM').id, 'wild');
  });

  it('lets a host route beat a more specific host-less path for that host', () => {
    assert.equal(hit(router, '/x', 'GET', 'admin.example.com').id, 'admin-host');
    assert.equal(hit(router, '/y', 'GET', 'admin.example.com').id, 'admin-host');
    assert.equal(hit(router, '/y', 'GET', 'other.test').id, 'any-rest');
  });

  it('falls back to host-less routes when the host routes do not match the path', () => {
    const r = compileRoutes([route('h', '/only', ['GET'], 'api.example.com'), route('global', '/healthz')]);
    assert.equal(hit(r, '/healthz', 'GET', 'api.example.com').id, 'global');
    notFound(r, '/only', 'GET', 'other.test');
    notFound(r, '/only', 'GET', '');
  });

  it('normalizes Host values', () => {
    assert.equal(normalizeHost('API.Example.com:80'), 'api.example.com');
    assert.equal(normalizeHost('[::1]:8080'), '[::1]');
    assert.equal(normalizeHost('[::1]'), '[::1]');
    assert.equal(normalizeHost('a.b.'), 'a.b');
    assert.equal(normalizeHost(''), '');
    assert.equal(normalizeHost('plain'), 'plain');
    // ASCII-only lower-casing: a non-ASCII letter never turns into an ASCII one.
    assert.equal(normalizeHost('\u212A.example.com'), '\u212A.example.com');
    assert.equal(normalizeHost('ÀB'), 'Àb');
  });
});

describe('router: 404 and 405', () => {
  const router = compileRoutes([
    route('get', '/items/{id}', ['GET']),
    route('put', '/items/{id}', ['PUT', 'DELETE']),
    route('post', '/items', ['POST']),
    route('admin-post', '/admin', ['POST'], 'admin.example.com'),
    route('rest-post', '/v1/{r*}', ['POST']),
    route('models-get', '/v1/models/{m}', ['GET']),
  ]);

  it('answers 405 with the union of methods of the routes matching the path', () => {
    notAllowed(router, '/items/1', 'PATCH', ['DELETE', 'GET', 'PUT']);
    notAllowed(router, '/items', 'GET', ['POST']);
  });

  it('picks a less specific route when it is the only one allowing the method', () => {
    assert.equal(hit(router, '/v1/models/m', 'POST').id, 'rest-post');
    assert.equal(hit(router, '/v1/models/m', 'GET').id, 'models-get');
    notAllowed(router, '/v1/models/m', 'DELETE', ['GET', 'POST']);
  });

  it('does not imply HEAD from GET, nor any method from another', () => {
    notAllowed(router, '/items/1', 'HEAD', ['DELETE', 'GET', 'PUT']);
    notAllowed(router, '/items/1', 'OPTIONS', ['DELETE', 'GET', 'PUT']);
  });

  it('compares methods case-sensitively', () => {
    notAllowed(router, '/items/1', 'get', ['DELETE', 'GET', 'PUT']);
  });

  it('answers 404 when no route matches the path and host', () => {
    notFound(router, '/nothing', 'GET');
    notFound(router, '/items/1/x', 'GET');
    // The host route's methods are not advertised on other hosts.
    notFound(router, '/admin', 'GET', 'www.example.com');
    notAllowed(router, '/admin', 'GET', ['POST'], 'admin.example.com');
  });
});

describe('validateTemplate', () => {
  const valid = ['/', '/a', '/a/', '/v1/models/{model}/predict', '/files/{path*}', '/static/*', '/*', '/{a}/{b}/', '/{_x1}', '/café', '/sent iment', '/a:b', "/a!$&'()=,@"];
  for (const t of valid) {
    it(`accepts ${t}`, () => assert.equal(validateTemplate(t), null));
  }

  const invalid: ReadonlyArray<readonly [string, RegExp]> = [
    ['', /non-empty/],
    ['a/b', /start with '\/'/],
    ['/a//b', /empty segment at position 2/],
    ['//', /empty segment at position 1/],
    ['/a/./b', /dot segment/],
    ['/..', /dot segment/],
    ['/{a', /unbalanced braces/],
    ['/a}', /unbalanced braces/],
    ['/{{a}', /unbalanced braces/],
    ['/v{version}', /whole segment/],
    ['/{a}.json', /whole segment/],
    ['/{a}{b}', /whole segment/],
    ['/{}', /invalid parameter name ''/],
    ['/{1a}', /invalid parameter name '1a'/],
    ['/{a-b}', /invalid parameter name 'a-b'/],
    ['/{*}', /invalid parameter name ''/],
    ['/{a**}', /invalid parameter name 'a\*'/],
    ['/{a}/{a}', /duplicate parameter name 'a'/],
    ['/{a}/{a*}', /duplicate parameter name 'a'/],
    ['/{rest*}/x', /rest parameter '\{rest\*\}' must be the last segment/],
    ['/files/{p*}/', /must be the last segment/],
    ['/*/x', /wildcard '\*' must be the last segment/],
    ['/static/*/', /wildcard '\*' must be the last segment/],
    ['/a*', /'\*' is only allowed as the whole last segment/],
    ['/a%20b', /'%' is not allowed/],
    ['/a;b', /';'/],
    ['/a\\b', /'\\' is refused in request paths/],
    ['/a?b', /query or fragment/],
    ['/a#b', /query or fragment/],
    ['/a\u0000', /control/],
  ];
  for (const [t, problem] of invalid) {
    it(`refuses ${JSON.stringify(t)}`, () => {
      const p = validateTemplate(t);
      assert.ok(p !== null, 'accepted');
      assert.match(p, problem);
    });
  }

  it('is enforced by compileRoutes with the route id', () => {
    assert.throws(() => compileRoutes([route('bad', '/{a}/{a}')]), /route 'bad': invalid path template '\/\{a\}\/\{a\}': duplicate parameter name 'a'/);
    assert.throws(() => compileRoutes([route('bad', '/x', [])]), /route 'bad': no methods/);
    assert.throws(() => compileRoutes([route('bad', '/x', ['GET'], 'a.com:80')]), /route 'bad': invalid host 'a.com:80'/);
  });
});

describe('validateHostPattern', () => {
  for (const h of ['api.example.com', 'API.Example.com', '*.example.com', 'localhost', '127.0.0.1', 'a-b.c']) {
    it(`accepts ${h}`, () => assert.equal(validateHostPattern(h), null));
  }
  const invalid: ReadonlyArray<readonly [string, RegExp]> = [
    ['', /non-empty/],
    ['a.com:443', /port/],
    ['a.com.', /dot/],
    ['*', /whole first label/],
    ['*.*.com', /whole first label/],
    ['a.*.com', /whole first label/],
    ['*a.com', /whole first label/],
    ['-a.com', /invalid host label '-a'/],
    ['a..com', /invalid host label ''/],
    ['a_b.com', /invalid host label 'a_b'/],
    ['[::1]', /IPv6/],
  ];
  for (const [h, problem] of invalid) {
    it(`refuses ${JSON.stringify(h)}`, () => {
      const p = validateHostPattern(h);
      assert.ok(p !== null, 'accepted');
      assert.match(p, problem);
    });
  }
});
