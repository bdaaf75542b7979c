import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadRequestError, UriTooLongError } from '../../../src/errors.ts';
import { canonicalizeTarget, TARGET_REASONS, type TargetReason } from '../../../src/http/canonicalize.ts';

/** A null-prototype record, the shape `query` has. */
function rec<T>(o: Record<string, T>): Record<string, T> {
  return Object.assign(Object.create(null) as Record<string, T>, o);
}

function refused(target: string, reason: TargetReason): void {
  assert.throws(
    () => canonicalizeTarget(target),
    (err: unknown) => {
      assert.ok(err instanceof BadRequestError, `expected BadRequestError for ${JSON.stringify(target)}, got ${String(err)}`);
      assert.equal(err.reason, reason, `reason for ${JSON.stringify(target)}`);
      assert.equal(err.status, 400);
      assert.equal(err.code, 'REGATE_ERR_BAD_REQUEST');
      return true;
    },
  );
}

describe('canonicalizeTarget: refusals', () => {
  const cases: ReadonlyArray<readonly [TargetReason, readonly string[]]> = [
    ['not_origin_form', ['', 'a/b', '?x=1', 'host_name/x', '../a']],
    ['absolute_form', ['http://x/y', 'HTTPS://example.com/', 'http://x', 'urn:isbn:123', 'a+b-c.d://x']],
    ['authority_form', ['example.com:443', 'localhost:8080', '[::1]:443']],
    ['asterisk_form', ['*']],
    ['fragment', ['/a#b', '/#', '/a?b=1#c', '/a?#']],
    ['invalid_character', ['/a b', '/é', '/a?b=c d', '/a?é', '/\u00a0', '/\u{1F600}', '/\u2028']],
    [
      'control_character',
      [
        '/a\u0000', '/a\n', '/a\r\nX: y', '/a\t', '/a\u007f', '/a\u0085', '/a\u009f',
        '/a%00', '/a%0a', '/a%0D%0A', '/a%1F', '/a%7f', '/a%7F', '/a%C2%80', '/a%C2%85', '/a%c2%9f',
        '/a?b=%00', '/a?b=\u0001', '/a?%0a=1', '/a?b=%C2%85', '/a?b=\u007f',
      ],
    ],
    [
      'invalid_percent_encoding',
      ['/%', '/a%', '/a%4', '/a%zz', '/a%4g', '/a%g4', '/%%41', '/a%2/b', '/a?b=%', '/a?b=%zz', '/a?%4=1', '/a?b=%4'],
    ],
    [
      'invalid_utf8',
      [
        '/%ff', '/%C3', '/%C3%28', '/%80', '/%C0%AE', '/%C0%AF', '/%E0%80%AE', '/%ED%A0%80',
        '/%F4%90%80%80', '/%F0%9F%98', '/a?b=%ff', '/a?%C3=1',
      ],
    ],
    ['dot_segment', ['/.', '/..', '/a/.', '/a/..', '/a/./b', '/a/../b', '/%2e', '/%2E', '/%2e%2e', '/%2E%2e', '/.%2e', '/%2e.', '/a/%2e%2e/b', '/./', '/../a', '/a/..?x=1']],
    ['empty_segment', ['//', '//a', '/a//b', '/a//', '///', '//evil.example/x', '//?x=1']],
    ['encoded_slash', ['/a%2fb', '/a%2Fb', '/%2F', '/..%2f', '/a/%2f/b']],
    ['backslash', ['/a\\b', '/\\', '/a%5cb', '/a%5C..%5C', '/..\\']],
    ['semicolon', ['/a;b', '/a;', '/..;/admin', '/public/..;/admin', '/a;jsessionid=1', '/a%3bb', '/a%3B']],
    // NFKC turns these into '/', '\', ';', '.' or '..'.
    // ... or contain '%': fullwidth `％２ｅ` is `%2e` after NFKC (issue 9), small percent U+FE6A too.
    [
      'unicode_confusable',
      [
        '/%EF%BC%8F', '/a%EF%BC%8Fb', '/%EF%BC%BC', '/%EF%BC%9B', '/%CD%BE', '/%E2%80%A5', '/%EF%BC%8E', '/%EF%BC%8E%EF%BC%8E', '/%EF%B9%92',
        '/%EF%BC%85%EF%BC%92%EF%BD%85', '/a/%EF%BC%85%EF%BC%92%EF%BD%85%EF%BC%85%EF%BC%92%EF%BD%85/b', '/%EF%BC%85', '/x%EF%B9%AA2e',
      ],
    ],
    // Encoded white space at a segment's edge: trimming upstreams would see another segment (issue 9).
    [
      'encoded_whitespace',
      [
        '/admin%20', '/%20admin', '/a/admin%20/b', '/%20', '/a%C2%A0', '/%E3%80%80a', '/a%E2%80%83', '/a%E2%80%A8',
        '/%EF%BB%BFadmin', '/admin%EF%BB%BF', '/admin%20?x=1', '/x%E1%9A%80',
      ],
    ],
  ];
  for (const [reason, targets] of cases) {
    it(reason, () => {
      for (const t of targets) refused(t, reason);
    });
  }

  it('covers every documented reason', () => {
    assert.deepEqual(new Set(cases.map(([r]) => r)), new Set(TARGET_REASONS));
  });

  it('refuses a target longer than maxBytes with 414 before parsing it', () => {
    assert.throws(
      () => canonicalizeTarget('/' + 'a'.repeat(100), 100),
      (err: unknown) => err instanceof UriTooLongError && err.status === 414 && err.reason === 'uri_too_long' && err.code === 'REGATE_ERR_URI_TOO_LONG',
    );
    // Even garbage: the length limit is checked first.
    assert.throws(() => canonicalizeTarget('\u0000'.repeat(9000)), UriTooLongError);
    assert.equal(canonicalizeTarget('/' + 'a'.repeat(99), 100).path.length, 100);
    assert.equal(canonicalizeTarget('/' + 'a'.repeat(8191)).segments[0]!.length, 8191);
    assert.throws(() => canonicalizeTarget('/' + 'a'.repeat(8192)), UriTooLongError);
  });

  it('throws TypeError on caller misuse', () => {
    assert.throws(() => canonicalizeTarget(undefined as unknown as string), TypeError);
    assert.throws(() => canonicalizeTarget('/', 0), TypeError);
    assert.throws(() => canonicalizeTarget('/', 1.5), TypeError);
    assert.throws(() => canonicalizeTarget('/', Number.NaN), TypeError);
  });

  it('says where the problem is, without echoing the input', () => {
    try {
      canonicalizeTarget('/abc/%2e%2e');
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof BadRequestError);
      assert.equal(err.detail, 'at offset 5');
    }
  });
});

describe('canonicalizeTarget: accepted targets', () => {
  // [target, path, segments, wirePath]
  const cases: ReadonlyArray<readonly [string, string, readonly string[], string]> = [
    ['/', '/', [''], '/'],
    ['/a', '/a', ['a'], '/a'],
    ['/a/', '/a/', ['a', ''], '/a/'],
    ['/a/b/', '/a/b/', ['a', 'b', ''], '/a/b/'],
    ['/v1/models/sent%20iment/predict', '/v1/models/sent iment/predict', ['v1', 'models', 'sent iment', 'predict'], '/v1/models/sent%20iment/predict'],
    // Decoded exactly once: '%252e' is the data '%2e' and goes upstream re-encoded.
    ['/a%252e', '/a%2e', ['a%2e'], '/a%252e'],
    ['/%252e%252e', '/%2e%2e', ['%2e%2e'], '/%252e%252e'],
    ['/%25', '/%', ['%'], '/%25'],
    // '+' in a path is a literal plus, encoded on the wire.
    ['/a+b', '/a+b', ['a+b'], '/a%2Bb'],
    ['/a%2Bb', '/a+b', ['a+b'], '/a%2Bb'],
    ['/a%20b', '/a b', ['a b'], '/a%20b'],
    // Unreserved characters are decoded; hex case normalized.
    ['/%41%7e%2d%5F', '/A~-_', ['A~-_'], '/A~-_'],
    ['/a%2ejson', '/a.json', ['a.json'], '/a.json'],
    ['/%3f%23', '/?#', ['?#'], '/%3F%23'],
    // Custom methods and other pchar sub-delims stay raw.
    ['/v1/models/m:predict', '/v1/models/m:predict', ['v1', 'models', 'm:predict'], '/v1/models/m:predict'],
    ["/a!$&'()*,=@:b", "/a!$&'()*,=@:b", ["a!$&'()*,=@:b"], "/a!$&'()*,=@:b"],
    ['/a%3Ab%40c', '/a:b@c', ['a:b@c'], '/a:b@c'],
    // Characters browsers send unencoded are data, encoded upstream.
    ['/{x}|"<>^`[]', '/{x}|"<>^`[]', ['{x}|"<>^`[]'], '/%7Bx%7D%7C%22%3C%3E%5E%60%5B%5D'],
    // Unicode segments keep their code points (no normalization).
    ['/caf%C3%A9', '/café', ['café'], '/caf%C3%A9'],
    ['/cafe%CC%81', '/cafe\u0301', ['cafe\u0301'], '/cafe%CC%81'],
    ['/%E6%97%A5%E6%9C%AC', '/日本', ['日本'], '/%E6%97%A5%E6%9C%AC'],
    ['/%F0%9F%98%80', '/\u{1F600}', ['\u{1F600}'], '/%F0%9F%98%80'],
    // A BOM inside a segment is data, not stripped (at an edge it is refused: encoded_whitespace).
    ['/ad%EF%BB%BFmin', '/ad\uFEFFmin', ['ad\uFEFFmin'], '/ad%EF%BB%BFmin'],
    // White space inside a segment is data; only the edges are refused.
    ['/sent%20iment', '/sent iment', ['sent iment'], '/sent%20iment'],
    ['/a%E3%80%80b', '/a\u3000b', ['a\u3000b'], '/a%E3%80%80b'],
    // Dot-ish segments that are not dot segments.
    ['/.well-known/x', '/.well-known/x', ['.well-known', 'x'], '/.well-known/x'],
    ['/...', '/...', ['...'], '/...'],
    ['/a./.b', '/a./.b', ['a.', '.b'], '/a./.b'],
    ['/%2e%2e%2e', '/...', ['...'], '/...'],
    // Fullwidth letters normalize to letters, which is harmless.
    ['/%EF%BD%81', '/ａ', ['ａ'], '/%EF%BD%81'],
  ];
  for (const [target, path, segments, wirePath] of cases) {
    it(JSON.stringify(target), () => {
      const t = canonicalizeTarget(target);
      assert.equal(t.path, path);
      assert.deepEqual(t.segments, segments);
      assert.equal(t.wirePath, wirePath);
      assert.equal(t.path, '/' + t.segments.join('/'));
      assert.equal(t.wireQuery, '');
      assert.deepEqual(t.query, rec({}));
    });
  }

  it('keeps the trailing slash meaningful', () => {
    assert.notEqual(canonicalizeTarget('/a/').path, canonicalizeTarget('/a').path);
    assert.notDeepEqual(canonicalizeTarget('/a/').segments, canonicalizeTarget('/a').segments);
  });
});

describe('canonicalizeTarget: query', () => {
  // [raw query, parsed, wireQuery]
  const cases: ReadonlyArray<readonly [string, ReadonlyArray<readonly [string, string[]]>, string]> = [
    ['', [], ''],
    ['&', [], ''],
    ['&&&', [], ''],
    ['a=1', [['a', ['1']]], 'a=1'],
    ['a=1&b=2&a=3', [['a', ['1', '3']], ['b', ['2']]], 'a=1&b=2&a=3'],
    ['a', [['a', ['']]], 'a='],
    ['a=', [['a', ['']]], 'a='],
    ['=', [['', ['']]], '='],
    ['=x', [['', ['x']]], '=x'],
    ['a&&b', [['a', ['']], ['b', ['']]], 'a=&b='],
    ['a=b=c', [['a', ['b=c']]], 'a=b%3Dc'],
    // '+' is a space (form semantics); the wire uses %20 so every parser agrees.
    ['q=a+b', [['q', ['a b']]], 'q=a%20b'],
    ['q=a%2Bb', [['q', ['a+b']]], 'q=a%2Bb'],
    ['a+b=c', [['a b', ['c']]], 'a%20b=c'],
    ['q=%C3%A9t%C3%A9', [['q', ['été']]], 'q=%C3%A9t%C3%A9'],
    ['q=%252e', [['q', ['%2e']]], 'q=%252e'],
    // In the query these are data, not refusals.
    ['p=/a/../b;c\\d?e', [['p', ['/a/../b;c\\d?e']]], 'p=%2Fa%2F..%2Fb%3Bc%5Cd%3Fe'],
    ['filter[name]=x&sort=-id', [['filter[name]', ['x']], ['sort', ['-id']]], 'filter%5Bname%5D=x&sort=-id'],
    ['a=%26&b=%3D', [['a', ['&']], ['b', ['=']]], 'a=%26&b=%3D'],
    ['__proto__=1&constructor=2', [['__proto__', ['1']], ['constructor', ['2']]], '__proto__=1&constructor=2'],
    ['x=~._-', [['x', ['~._-']]], 'x=~._-'],
  ];
  for (const [raw, parsed, wire] of cases) {
    it(JSON.stringify(raw), () => {
      const t = canonicalizeTarget(`/p?${raw}`);
      const expected = Object.create(null) as Record<string, string[]>;
      for (const [k, v] of parsed) expected[k] = v;
      assert.deepEqual(t.query, expected);
      assert.equal(t.wireQuery, wire);
      assert.equal(t.path, '/p');
    });
  }

  it('agrees with URLSearchParams on every well-formed query', () => {
    for (const [raw] of cases) {
      const t = canonicalizeTarget(`/p?${raw}`);
      const fromWire = [...new URLSearchParams(t.wireQuery)];
      const fromRaw = [...new URLSearchParams(raw)];
      assert.deepEqual(fromWire, fromRaw, raw);
    }
  });

  it('never prototype-pollutes', () => {
    const t = canonicalizeTarget('/p?__proto__=x');
    assert.equal(Object.getPrototypeOf(t.query), null);
    assert.deepEqual(t.query['__proto__'], ['x']);
    assert.equal(({} as Record<string, unknown>)['x'], undefined);
  });

  it('parses the query of the root path and an empty query', () => {
    assert.deepEqual(canonicalizeTarget('/?a=1').segments, ['']);
    assert.equal(canonicalizeTarget('/a?').wireQuery, '');
    assert.equal(canonicalizeTarget('/a?').path, '/a');
  });
});

describe('canonicalizeTarget: wire form', () => {
  const targets = [
    '/',
    '/a/b/',
    '/v1/models/sent%20iment/predict?x=1+2&y&&z=%C3%A9',
    '/a%252e?q=%252e',
    '/a+b?c+d=e+f',
    '/{x}|"<>^`[]?{a}=[b]',
    "/a!$&'()*,=@:b?a!$'()*,:@/?=1",
    '/caf%c3%a9/%e6%97%a5?k=%f0%9f%98%80',
  ];

  it('is a fixed point: canonicalizing the wire target gives the same result', () => {
    for (const raw of targets) {
      const t = canonicalizeTarget(raw);
      const again = canonicalizeTarget(t.wireQuery ? `${t.wirePath}?${t.wireQuery}` : t.wirePath);
      assert.deepEqual(again, t, raw);
    }
  });

  it('is what WHATWG URL parsing of the forwarded target yields', () => {
    // What an upstream built on WHATWG URL sees: the same segments and query.
    for (const raw of targets) {
      const t = canonicalizeTarget(raw);
      const url = new URL(t.wirePath + (t.wireQuery ? `?${t.wireQuery}` : ''), 'http://upstream.invalid');
      assert.equal(url.pathname, t.wirePath, raw);
      assert.deepEqual(url.pathname.split('/').slice(1).map(decodeURIComponent), t.segments, raw);
      const q = Object.create(null) as Record<string, string[]>;
      for (const [k, v] of url.searchParams) (q[k] ??= []).push(v);
      assert.deepEqual(q, t.query, raw);
    }
  });
});
