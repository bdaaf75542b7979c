import { after, before, beforeEach, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AMBIGUOUS, createKeySource, JwksLoadError, parseJwks, type JwksRefreshResult, type KeySource } from '../../../src/authn/jwks.ts';
import { AuthnError, ConfigError } from '../../../src/errors.ts';
import { startJwksServer, type JwksServer } from '../../helpers/jwks-server.ts';
import { generateTestKey, issuerConfig, jwksOf, type TestKey } from '../../helpers/tokens.ts';

let es: TestKey;
let es2: TestKey;
let rs: TestKey;
let ed: TestKey;
before(async () => {
  [es, es2, rs, ed] = await Promise.all([generateTestKey('ES256'), generateTestKey('ES256'), generateTestKey('RS256'), generateTestKey('EdDSA')]);
});

function isReason(reason: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof AuthnError, `expected AuthnError, got ${String(err)}`);
    assert.equal(err.reason, reason);
    return true;
  };
}

describe('parseJwks', () => {
  const algs = ['ES256', 'RS256', 'PS256', 'EdDSA'];
  const lenient = { strict: false };

  it('imports every compatible (key, alg) pair once', () => {
    const noAlg = { ...rs.publicJwk, alg: undefined };
    const set = parseJwks({ keys: [es.publicJwk, noAlg, ed.publicJwk] }, algs, lenient);
    // RSA without "alg" is usable for RS256 and PS256.
    assert.equal(set.size, 4);
    assert.deepEqual(set.kids, [es.kid, rs.kid, ed.kid]);
    assert.equal(set.lookup('ES256', es.kid)?.constructor.name, 'CryptoKey');
    assert.ok(set.lookup('PS256', rs.kid));
    assert.equal(set.lookup('RS256', es.kid), undefined);
    assert.equal(set.lookup('ES384', es.kid), undefined);
    assert.equal(set.lookup('ES256', 'nope'), undefined);
    // Without kid: the only ES256 key.
    assert.equal(set.lookup('ES256', undefined), set.lookup('ES256', es.kid));
  });

  it('several candidates without kid, or a duplicated kid → AMBIGUOUS', () => {
    const set = parseJwks({ keys: [es.publicJwk, es2.publicJwk, { ...es2.publicJwk, kid: es.kid }] }, algs, lenient);
    assert.equal(set.lookup('ES256', undefined), AMBIGUOUS);
    assert.equal(set.lookup('ES256', es.kid), AMBIGUOUS);
    assert.ok(set.lookup('ES256', es2.kid) !== AMBIGUOUS);
  });

  it('skips keys that are not for verification with these algorithms', () => {
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    const set = parseJwks(
      {
        keys: [
          { ...es.publicJwk, use: 'enc' },
          { ...es.publicJwk, key_ops: ['encrypt'] },
          { ...es.publicJwk, alg: 'ES384' },
          { ...es.publicJwk, crv: 'P-384' },
          { kty: 'oct', k: 'a'.repeat(64), kid: 'secret' },
          { ...weak, kid: 'weak' },
          { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA', kid: 'bad-point' },
          { kty: 'XYZ', kid: 'unknown-kty' },
          'not an object',
          { ...es.publicJwk, kid: 7 },
        ],
      },
      algs,
      lenient,
    );
    assert.equal(set.size, 0);
    assert.deepEqual(
      set.skipped.map((s) => s.keyPath),
      // /keys/0-4 are simply not for us (enc, no verify op, other alg or curve, remote secret); 7 has an unknown kty.
      ['/keys/5', '/keys/6', '/keys/8', '/keys/9'],
    );
    assert.match(set.skipped[0]!.problem, /2048/);
  });

  it('strict mode throws with the key path', () => {
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    assert.throws(
      () => parseJwks({ keys: [es.publicJwk, { ...weak, kid: 'weak' }] }, algs, { strict: true }),
      (err: unknown) => err instanceof JwksLoadError && err.keyPath === '/keys/1' && /2048/.test(err.message),
    );
  });

  it('refuses a whole set that carries private key material', () => {
    for (const jwks of [{ keys: [rs.publicJwk, es.privateJwk] }, { keys: [{ ...rs.privateJwk, use: 'enc' }] }]) {
      assert.throws(() => parseJwks(jwks, algs, lenient), (err: unknown) => err instanceof JwksLoadError && /private key material/.test(err.message));
    }
  });

  it('oct (shared-secret) keys are never verification keys, even in files', () => {
    const secret = { kty: 'oct', k: Buffer.alloc(32, 7).toString('base64url'), kid: 's', alg: 'HS256' };
    for (const strict of [false, true]) {
      const set = parseJwks({ keys: [secret, es.publicJwk] }, [...algs, 'HS256'], { strict });
      assert.equal(set.size, 1);
      assert.equal(set.lookup('HS256', 's'), undefined);
    }
  });

  it('an RSA public key never becomes an HMAC key', () => {
    const set = parseJwks({ keys: [{ ...rs.publicJwk, alg: undefined }] }, ['HS256', 'RS256'], { strict: true });
    assert.equal(set.lookup('HS256', rs.kid), undefined);
    assert.equal(set.lookup('HS256', undefined), undefined);
    assert.ok(set.lookup('RS256', rs.kid));
  });

  for (const doc of [null, [], 'x', {}, { keys: {} }, { keys: 'a' }]) {
    it(`not a JWKS: ${JSON.stringify(doc)}`, () => {
      assert.throws(() => parseJwks(doc, algs, lenient), JwksLoadError);
    });
  }
});

describe('file key source', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'regate-jwks-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, content: string): string => {
    const file = join(dir, name);
    writeFileSync(file, content);
    return file;
  };

  it('loads at construction and is ready without I/O at request time', () => {
    const file = write('ok.json', JSON.stringify(jwksOf(es, rs)));
    const source = createKeySource(issuerConfig({ jwks_file: file }));
    assert.equal(source.ready(), true);
    assert.ok(source.getKey('ES256', es.kid));
    assert.throws(() => source.getKey('ES256', 'other'), isReason('unknown_key'));
  });

  const bad: [string, string | undefined, RegExp][] = [
    ['missing file', undefined, /cannot read JWKS/],
    ['not JSON', '{nope', /cannot read JWKS/],
    ['not a JWKS', '{"foo":1}', /"keys" array/],
    ['private key', '__PRIVATE__', /private key material/],
    ['no usable key', '{"keys":[]}', /no key usable/],
  ];
  for (const [name, content, pattern] of bad) {
    it(`${name} → ConfigError naming the file`, () => {
      const file = content === undefined ? join(dir, 'absent.json') : write(`${name}.json`, content === '__PRIVATE__' ? JSON.stringify({ keys: [es.privateJwk] }) : content);
      assert.throws(
        () => createKeySource(issuerConfig({ jwks_file: file })),
        (err: unknown) => err instanceof ConfigError && err.file === file && pattern.test(err.message),
      );
    });
  }

  it('a bad key gets its key path', () => {
    const file = write('badkey.json', JSON.stringify({ keys: [es.publicJwk, { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA', kid: 'x' }] }));
    assert.throws(
      () => createKeySource(issuerConfig({ jwks_file: file })),
      (err: unknown) => err instanceof ConfigError && err.keyPath === '/keys/1',
    );
  });
});

describe('remote key source', () => {
  let server: JwksServer;
  let sources: KeySource[];
  let clock: number;
  let events: JwksRefreshResult[];

  beforeEach(async () => {
    server = await startJwksServer(jwksOf(es, rs));
    sources = [];
    clock = 0;
    events = [];
  });
  afterEach(async () => {
    for (const s of sources) s.close();
    await server.close();
  });

  function source(jwks: Partial<{ cache_max_age_s: number; cooldown_s: number; timeout_ms: number }> = {}): KeySource {
    const sink = events;
    const s = createKeySource(issuerConfig({ jwks_url: server.url, jwks: { timeout_ms: 2000, cache_max_age_s: 300, cooldown_s: 30, ...jwks } }), {
      monotonicMs: () => clock,
      onRefresh: (id, result) => {
        assert.equal(id, 'idp');
        sink.push(result);
      },
    });
    sources.push(s);
    return s;
  }

  it('prefetch loads once; lookups are synchronous afterwards', async () => {
    const s = source();
    assert.equal(await s.prefetch(), true);
    assert.equal(s.ready(), true);
    for (let i = 0; i < 50; i++) assert.ok(!(s.getKey('ES256', es.kid) instanceof Promise));
    assert.equal(server.requests, 1);
    assert.deepEqual(events, ['success']);
    assert.match(String(server.lastHeaders?.accept), /application\/jwk-set\+json/);
  });

  it('first use loads lazily; concurrent first uses share one fetch', async () => {
    server.delayMs = 50;
    const s = source();
    const keys = await Promise.all(Array.from({ length: 25 }, () => s.getKey('ES256', es.kid)));
    assert.equal(new Set(keys).size, 1);
    assert.equal(server.requests, 1);
  });

  it('rotation: an unknown kid refetches once after the cooldown', async () => {
    const s = source();
    await s.prefetch();
    server.setKeys(jwksOf(es2));
    // Within the cooldown of the last fetch: no refetch.
    await assert.rejects(async () => s.getKey('ES256', es2.kid), isReason('unknown_key'));
    assert.equal(server.requests, 1);
    clock += 30_000;
    assert.ok(await s.getKey('ES256', es2.kid));
    assert.equal(server.requests, 2);
    // The rotated-out key is gone.
    await assert.rejects(async () => s.getKey('ES256', es.kid), isReason('unknown_key'));
    assert.equal(server.requests, 2);
  });

  it('keys are re-fetched on their max age although no request asks for a key (a timer; stopped by close)', async () => {
    const s = source({ cache_max_age_s: 1 });
    await s.prefetch();
    assert.equal(server.requests, 1);
    const deadline = Date.now() + 10_000;
    while (server.requests < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(server.requests >= 3, `refreshed by the timer (${server.requests} fetches)`);
    s.close();
    const after = server.requests;
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(server.requests, after, 'no fetch after close');
  });

  it('a refresh reports exactly the keys it dropped; an unchanged JWK keeps its imported key', async () => {
    const removed: Set<unknown>[] = [];
    const s = createKeySource(issuerConfig({ jwks_url: server.url, jwks: { timeout_ms: 2000, cache_max_age_s: 300, cooldown_s: 0 } }), {
      monotonicMs: () => clock,
      onKeysRemoved: (id, keys) => {
        assert.equal(id, 'idp');
        removed.push(new Set(keys));
      },
    });
    sources.push(s);
    await s.prefetch();
    const esKey = s.getKey('ES256', es.kid);
    const rsKey = s.getKey('RS256', rs.kid);
    // A new key is published beside the old ones: nothing is removed, the old objects stay.
    server.setKeys(jwksOf(es, rs, es2));
    assert.ok(await s.getKey('ES256', es2.kid));
    assert.equal(s.getKey('ES256', es.kid), esKey);
    assert.equal(s.getKey('RS256', rs.kid), rsKey);
    assert.deepEqual(removed, []);
    // The RSA key is withdrawn: reported, exactly it.
    server.setKeys(jwksOf(es, es2));
    clock += 300_000;
    s.getKey('ES256', es.kid); // stale: one background refresh
    const deadline = Date.now() + 5_000;
    while (removed.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(removed.length, 1);
    assert.deepEqual([...removed[0]!], [rsKey]);
    assert.equal(s.getKey('ES256', es.kid), esKey);
  });

  it('cooldown: 100 random kids cause at most one refetch', async () => {
    const s = source();
    await s.prefetch();
    clock += 60_000;
    const results = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => s.getKey('ES256', `random-${i}`)));
    assert.ok(results.every((r) => r.status === 'rejected' && r.reason instanceof AuthnError && r.reason.reason === 'unknown_key'));
    for (let i = 0; i < 100; i++) await assert.rejects(async () => s.getKey('ES256', `again-${i}`), isReason('unknown_key'));
    assert.ok(server.requests <= 2, `requests: ${server.requests}`);
  });

  it('endpoint down after the first load: cached keys keep working, failures reported', async () => {
    const s = source({ cache_max_age_s: 60, cooldown_s: 10 });
    await s.prefetch();
    server.mode = 'down';
    clock += 61_000; // stale: the next lookup triggers a background refresh
    assert.ok(s.getKey('ES256', es.kid));
    await s.prefetch(); // joins the background refresh (single flight)
    assert.ok(s.getKey('ES256', es.kid));
    assert.equal(s.ready(), true);
    assert.deepEqual(events, ['success', 'error']);
    assert.equal(server.requests, 2);
    // Background refreshes are rate-limited by the cooldown while failing.
    const before = server.requests;
    for (let i = 0; i < 20; i++) s.getKey('ES256', es.kid);
    assert.equal(server.requests, before);
    // Unknown kid while down: unknown_key, not jwks_unavailable.
    clock += 10_000;
    await assert.rejects(async () => s.getKey('ES256', 'new'), isReason('unknown_key'));
  });

  it('stale keys are served immediately while one background refresh runs', async () => {
    const s = source({ cache_max_age_s: 60 });
    await s.prefetch();
    server.delayMs = 100;
    clock += 61_000;
    const key = s.getKey('ES256', es.kid);
    assert.ok(!(key instanceof Promise), 'stale lookup must not wait for the refresh');
    await s.prefetch(); // joins the in-flight refresh
    assert.equal(server.requests, 2);
    assert.deepEqual(events, ['success', 'not_modified']); // same body
  });

  it('ETag: a 304 renews the keys as not_modified', async () => {
    server.etag = true;
    const s = source({ cache_max_age_s: 1 });
    await s.prefetch();
    clock += 1000;
    await s.prefetch();
    assert.equal(server.lastHeaders?.['if-none-match'], '"v1"');
    assert.deepEqual(events, ['success', 'not_modified']);
    server.setKeys(jwksOf(es2));
    await s.prefetch();
    assert.deepEqual(events, ['success', 'not_modified', 'success']);
    assert.ok(s.getKey('ES256', es2.kid));
  });

  it('never loaded → jwks_unavailable; readiness probes drive recovery', async () => {
    server.mode = 'down';
    const s = source();
    assert.equal(await s.prefetch(), false);
    assert.equal(s.ready(), false);
    await assert.rejects(async () => s.getKey('ES256', es.kid), (err: unknown) => {
      isReason('jwks_unavailable')(err);
      assert.ok((err as AuthnError).cause instanceof JwksLoadError);
      return true;
    });
    // No refetch storm with no keys either: one retry per second at most.
    const before = server.requests;
    for (let i = 0; i < 20; i++) await assert.rejects(async () => s.getKey('ES256', es.kid), isReason('jwks_unavailable'));
    assert.equal(server.requests, before);
    server.mode = 'ok';
    clock += 1000;
    assert.equal(s.ready(), false); // kicks a fetch
    await s.prefetch();
    assert.equal(s.ready(), true);
    assert.ok(await s.getKey('ES256', es.kid));
  });

  const broken: [string, JwksServer['mode']][] = [
    ['500', 'down'],
    ['garbage', 'garbage'],
    ['JSON that is not a JWKS', 'not_jwks'],
    ['an empty key set', 'empty'],
    ['a body over 1 MiB', 'huge'],
    ['a redirect (never followed)', 'redirect'],
  ];
  for (const [name, mode] of broken) {
    it(`${name}: error, last good keys kept`, async () => {
      const s = source({ cooldown_s: 0 });
      await s.prefetch();
      server.mode = mode;
      assert.equal(await s.prefetch(), true);
      assert.deepEqual(events, ['success', 'error']);
      assert.ok(s.getKey('RS256', rs.kid));
      const fresh = source({ cooldown_s: 0 });
      assert.equal(await fresh.prefetch(), false);
      await assert.rejects(async () => fresh.getKey('RS256', rs.kid), isReason('jwks_unavailable'));
    });
  }

  it('a remote set with private key material is refused; old keys kept', async () => {
    const s = source({ cooldown_s: 0 });
    await s.prefetch();
    server.setKeys({ keys: [es2.privateJwk] });
    await s.prefetch();
    assert.deepEqual(events, ['success', 'error']);
    assert.ok(s.getKey('ES256', es.kid));
  });

  it('a hanging endpoint times out', async () => {
    server.mode = 'hang';
    const s = createKeySource(issuerConfig({ jwks_url: server.url }), { fetchTimeoutMs: 150, onRefresh: (_, r) => events.push(r) });
    sources.push(s);
    assert.equal(await s.prefetch(), false);
    assert.deepEqual(events, ['error']);
  });

  it('close() aborts an in-flight fetch and stops fetching', async () => {
    server.mode = 'hang';
    const s = source();
    const pending = s.prefetch();
    await new Promise((r) => setTimeout(r, 20));
    s.close();
    assert.equal(await pending, false);
    const before = server.requests;
    clock += 60_000;
    assert.equal(s.ready(), false);
    await assert.rejects(async () => s.getKey('ES256', es.kid), isReason('jwks_unavailable'));
    assert.equal(server.requests, before);
  });

  it('a throwing refresh hook never breaks key loading', async () => {
    const s = createKeySource(issuerConfig({ jwks_url: server.url }), {
      onRefresh: () => {
        throw new Error('metrics down');
      },
    });
    sources.push(s);
    assert.equal(await s.prefetch(), true);
  });
});
