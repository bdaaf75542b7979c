import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errors as joseErrors } from 'jose';
import { createAuthenticator, parseBearer, readAuthorization, toAuthnError, type JwtAuthenticator, type VerifiedTokenCache } from '../../../src/authn/jwt.ts';
import type { Identity } from '../../../src/authn/types.ts';
import { AUTHN_REASONS, AuthnError, ConfigError, type AuthnReason } from '../../../src/errors.ts';
import { startJwksServer, type JwksServer } from '../../helpers/jwks-server.ts';
import {
  algNoneToken,
  baseClaims,
  generateTestKey,
  hs256WithPublicKey,
  issuerConfig,
  jwksOf,
  nowSeconds,
  rawToken,
  segment,
  signRawToken,
  signToken,
  tamperHeader,
  tamperPayload,
  type TestKey,
} from '../../helpers/tokens.ts';

let server: JwksServer;
let es: TestKey;
let rs: TestKey;
let ed: TestKey;
let ps: TestKey;
let stranger: TestKey;
let auth: JwtAuthenticator;
const opened: JwtAuthenticator[] = [];

function track(a: JwtAuthenticator): JwtAuthenticator {
  opened.push(a);
  return a;
}

before(async () => {
  [es, rs, ed, ps] = await Promise.all([generateTestKey('ES256'), generateTestKey('RS256'), generateTestKey('EdDSA'), generateTestKey('PS256')]);
  // An attacker's key that claims the ES256 key's kid.
  stranger = await generateTestKey('ES256', es.kid);
  server = await startJwksServer(jwksOf(es, rs, ed, ps));
  auth = track(createAuthenticator([issuerConfig({ jwks_url: server.url, algorithms: ['ES256', 'RS256', 'EdDSA'] })]));
  const [result] = await auth.prefetch();
  assert.deepEqual(result, { issuerId: 'idp', ready: true });
});

after(async () => {
  for (const a of opened) a.close();
  await server.close();
});

function isAuthn(reason: AuthnReason) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof AuthnError, `expected AuthnError(${reason}), got ${String(err)}`);
    assert.equal(err.reason, reason, `message: ${err.message}`);
    assert.equal(err.status, 401);
    assert.equal(err.code, 'REGATE_ERR_AUTHN');
    return true;
  };
}

const bearer = (token: string): IncomingHttpHeaders => ({ authorization: `Bearer ${token}` });

describe('verification: attacks and failure reasons (real JWKS server)', () => {
  type Case = [name: string, token: () => Promise<string> | string, expected: AuthnReason | 'ok'];
  const cases: Case[] = [
    ['valid ES256', () => signToken(es, baseClaims()), 'ok'],
    ['valid RS256', () => signToken(rs, baseClaims()), 'ok'],
    ['valid EdDSA', () => signToken(ed, baseClaims()), 'ok'],
    ['aud array containing an accepted audience', () => signToken(es, baseClaims({ aud: ['other', 'regate'] })), 'ok'],
    // Algorithm attacks: rejected by the allowlist before any key lookup.
    ['alg none, empty signature', () => algNoneToken(baseClaims()), 'algorithm_not_allowed'],
    ['alg none with a real kid and junk signature', () => rawToken({ alg: 'none', kid: es.kid }, baseClaims(), 'AAAA'), 'algorithm_not_allowed'],
    ['alg NONE (case variant)', () => rawToken({ alg: 'NONE' }, baseClaims(), ''), 'algorithm_not_allowed'],
    ['HS256 keyed with the RSA public key (PEM)', () => hs256WithPublicKey(rs, baseClaims(), 'pem'), 'algorithm_not_allowed'],
    ['HS256 keyed with the RSA public key (JWK text)', () => hs256WithPublicKey(rs, baseClaims(), 'jwk'), 'algorithm_not_allowed'],
    ['PS256 (in the JWKS, not in the allowlist)', () => signToken(ps, baseClaims()), 'algorithm_not_allowed'],
    ['alg missing', () => rawToken({ typ: 'JWT', kid: es.kid }, baseClaims(), 'AAAA'), 'malformed_token'],
    // Key attacks.
    ['unknown kid', () => signToken(es, baseClaims(), { kid: 'no-such-kid' }), 'unknown_key'],
    ['numeric kid', () => signToken(es, baseClaims(), { kid: 7 }), 'malformed_token'],
    ['attacker key claiming a real kid', () => signToken(stranger, baseClaims()), 'invalid_signature'],
    ['embedded jwk header is ignored', () => signToken(stranger, baseClaims(), { kid: undefined, jwk: stranger.publicJwk, alg: 'ES256' }), 'invalid_signature'],
    ['jku header is ignored', () => signToken(stranger, baseClaims(), { kid: 'attacker', jku: 'http://127.0.0.1:1/jwks' }), 'unknown_key'],
    ['alg switched to RS256 on an EC kid', async () => tamperHeader(await signToken(es, baseClaims()), { alg: 'RS256' }), 'unknown_key'],
    ['tampered payload (sub)', async () => tamperPayload(await signToken(es, baseClaims()), { sub: 'admin' }), 'invalid_signature'],
    ['tampered payload (exp extended)', async () => tamperPayload(await signToken(rs, baseClaims()), { exp: nowSeconds() + 10 ** 6 }), 'invalid_signature'],
    ['signature stripped', async () => (await signToken(es, baseClaims())).replace(/[^.]+$/, ''), 'invalid_signature'],
    ['signature from another token', async () => {
      const a = await signToken(es, baseClaims({ sub: 'a' }));
      const b = await signToken(es, baseClaims({ sub: 'b' }));
      return `${a.split('.').slice(0, 2).join('.')}.${b.split('.')[2]}`;
    }, 'invalid_signature'],
    ['unrecognised crit header (validly signed)', () => signRawToken(es, { alg: 'ES256', kid: es.kid, crit: ['x-custom'], 'x-custom': 1 }, baseClaims()), 'malformed_token'],
    ['control: raw signing helper produces valid tokens', () => signRawToken(es, { alg: 'ES256', kid: es.kid }, baseClaims()), 'ok'],
    ['b64:false unencoded payload (RFC 7797) refused for JWTs', () => signRawToken(es, { alg: 'ES256', kid: es.kid, b64: false, crit: ['b64'] }, baseClaims()), 'malformed_token'],
    // Claims.
    ['expired', () => signToken(es, baseClaims({ exp: nowSeconds() - 3600 })), 'token_expired'],
    ['nbf in the future', () => signToken(es, baseClaims({ nbf: nowSeconds() + 3600 })), 'token_not_yet_valid'],
    ['wrong audience', () => signToken(es, baseClaims({ aud: 'someone-else' })), 'invalid_audience'],
    ['audience array without ours', () => signToken(es, baseClaims({ aud: ['a', 'b'] })), 'invalid_audience'],
    ['missing aud', () => signToken(es, baseClaims({ aud: undefined })), 'missing_claim'],
    ['missing exp', () => signToken(es, baseClaims({ exp: undefined })), 'missing_claim'],
    ['exp as a string', () => signToken(es, baseClaims({ exp: String(nowSeconds() + 60) })), 'invalid_claim'],
    ['nbf as a string', () => signToken(es, baseClaims({ nbf: '0' })), 'invalid_claim'],
    ['sub as a number', () => signToken(es, baseClaims({ sub: 42 })), 'invalid_claim'],
    ['roles as a number', () => signToken(es, baseClaims({ roles: 1 })), 'invalid_claim'],
    ['unconfigured iss', () => signToken(es, baseClaims({ iss: 'https://evil.test' })), 'unknown_issuer'],
    ['iss with a trailing slash', () => signToken(es, baseClaims({ iss: 'https://idp.test/' })), 'unknown_issuer'],
    ['missing iss', () => signToken(es, baseClaims({ iss: undefined })), 'missing_claim'],
    ['iss as an array', () => signToken(es, baseClaims({ iss: ['https://idp.test'] })), 'invalid_claim'],
    // Shape.
    ['huge but validly signed token', () => signToken(es, baseClaims({ pad: 'x'.repeat(9000) })), 'malformed_token'],
    // Claims become the policy input: nested past 64 levels they are the token's fault (401), not a 500.
    ['validly signed, claims nested 65 deep', () => signToken(es, baseClaims({ deep: JSON.parse('['.repeat(64) + ']'.repeat(64)) })), 'malformed_token'],
    ['validly signed, claims nested 64 deep', () => signToken(es, baseClaims({ deep: JSON.parse('['.repeat(63) + ']'.repeat(63)) })), 'ok'],
    ['two segments', () => `${segment({ alg: 'ES256' })}.${segment(baseClaims())}`, 'malformed_token'],
    ['JWE-shaped (five segments)', () => `${segment({ alg: 'RSA-OAEP', enc: 'A256GCM' })}.a.b.c.d`, 'malformed_token'],
    ['payload not JSON', () => `${segment({ alg: 'ES256', kid: es.kid })}.${Buffer.from('not json').toString('base64url')}.AAAA`, 'malformed_token'],
    ['payload a JSON array', () => rawToken({ alg: 'ES256', kid: es.kid }, [baseClaims()], 'AAAA'), 'malformed_token'],
    ['header not JSON', () => `${Buffer.from('{oops').toString('base64url')}.${segment(baseClaims())}.AAAA`, 'malformed_token'],
    ['base64 (not base64url) characters', () => `${segment({ alg: 'ES256' })}.${segment(baseClaims())}.ab+/cd==`, 'malformed_token'],
    ['empty header segment', () => `.${segment(baseClaims())}.AAAA`, 'malformed_token'],
  ];

  for (const [name, make, expected] of cases) {
    it(`${name} → ${expected}`, async () => {
      const token = await make();
      const result = auth.authenticate(bearer(token), 'required');
      if (expected === 'ok') {
        const identity = await result;
        assert.ok(identity);
        assert.equal(identity.sub, 'alice');
        assert.equal(identity.issuerId, 'idp');
      } else {
        await assert.rejects(Promise.resolve(result), isAuthn(expected));
      }
    });
  }

  it('every jose failure keeps the jose error as cause', async () => {
    const token = await signToken(es, baseClaims({ exp: nowSeconds() - 3600 }));
    await assert.rejects(auth.verifyToken(token), (err: unknown) => {
      assert.ok(err instanceof AuthnError);
      assert.ok(err.cause instanceof joseErrors.JWTExpired);
      assert.equal(err.bearerError, 'invalid_token');
      return true;
    });
  });

  it('none of the attacks caused a JWKS refetch storm', () => {
    // 1 prefetch + at most 1 cooldown-gated refetch for the unknown kids.
    assert.ok(server.requests <= 2, `requests: ${server.requests}`);
  });

  it('an unknown issuer never touches any JWKS', async () => {
    const before = server.requests;
    for (let i = 0; i < 20; i++) {
      await assert.rejects(auth.verifyToken(await signToken(stranger, baseClaims({ iss: `https://evil-${i}.test` }), { kid: `k${i}` })), isAuthn('unknown_issuer'));
    }
    assert.equal(server.requests, before);
  });
});

describe('toAuthnError: the jose → reason contract', () => {
  const payload = {};
  const cases: [unknown, AuthnReason][] = [
    [new joseErrors.JWTExpired('x', payload, 'exp', 'check_failed'), 'token_expired'],
    [new joseErrors.JWTClaimValidationFailed('x', payload, 'nbf', 'check_failed'), 'token_not_yet_valid'],
    [new joseErrors.JWTClaimValidationFailed('x', payload, 'nbf', 'invalid'), 'invalid_claim'],
    [new joseErrors.JWTClaimValidationFailed('x', payload, 'aud', 'check_failed'), 'invalid_audience'],
    [new joseErrors.JWTClaimValidationFailed('x', payload, 'aud', 'missing'), 'missing_claim'],
    [new joseErrors.JWTClaimValidationFailed('x', payload, 'iss', 'check_failed'), 'invalid_issuer'],
    [new joseErrors.JWTClaimValidationFailed('x', payload, 'sub', 'missing'), 'missing_claim'],
    [new joseErrors.JWTClaimValidationFailed('x', payload, 'typ', 'check_failed'), 'invalid_claim'],
    [new joseErrors.JOSEAlgNotAllowed('x'), 'algorithm_not_allowed'],
    [new joseErrors.JWKSNoMatchingKey(), 'unknown_key'],
    [new joseErrors.JWKSMultipleMatchingKeys(), 'unknown_key'],
    [new joseErrors.JWSSignatureVerificationFailed(), 'invalid_signature'],
    [new joseErrors.JWSInvalid('x'), 'malformed_token'],
    [new joseErrors.JWTInvalid('x'), 'malformed_token'],
    [new joseErrors.JOSENotSupported('x'), 'malformed_token'],
    [new TypeError('boom'), 'malformed_token'],
    [new SyntaxError('boom'), 'malformed_token'],
    [null, 'malformed_token'],
    ['a string', 'malformed_token'],
  ];
  for (const [err, reason] of cases) {
    it(`${(err as Error | null)?.constructor?.name ?? String(err)}${(err as { claim?: string })?.claim ? `(${(err as { claim: string }).claim})` : ''} → ${reason}`, () => {
      const mapped = toAuthnError(err);
      assert.ok(mapped instanceof AuthnError);
      assert.equal(mapped.reason, reason);
      assert.ok(AUTHN_REASONS.includes(mapped.reason as AuthnReason));
      assert.equal(mapped.cause, err);
    });
  }

  it('an AuthnError passes through unchanged', () => {
    const err = new AuthnError('jwks_unavailable', 'x');
    assert.equal(toAuthnError(err), err);
  });
});

describe('Authorization header parsing', () => {
  it('readAuthorization: rawHeaders is the source of truth', () => {
    assert.equal(readAuthorization({}, []), undefined);
    assert.equal(readAuthorization({ authorization: 'Bearer a' }, ['Host', 'x', 'AUTHORIZATION', 'Bearer a']), 'Bearer a');
    assert.throws(() => readAuthorization({ authorization: 'Bearer a' }, ['Authorization', 'Bearer a', 'authorization', 'Bearer b']), isAuthn('multiple_authorization'));
    // Even two identical copies are refused: we cannot know what a downstream hop keeps.
    assert.throws(() => readAuthorization({}, ['authorization', 'Bearer a', 'Authorization', 'Bearer a']), isAuthn('multiple_authorization'));
    assert.throws(() => readAuthorization({ authorization: ['Bearer a', 'Bearer b'] as unknown as string }), isAuthn('multiple_authorization'));
    assert.equal(readAuthorization({ authorization: 'Bearer a' }), 'Bearer a');
  });

  const valid: [string, string][] = [
    ['Bearer abc.def.ghi', 'abc.def.ghi'],
    ['bearer abc.def.ghi', 'abc.def.ghi'],
    ['BEARER abc.def.ghi', 'abc.def.ghi'],
    ['Bearer   abc.def.ghi', 'abc.def.ghi'],
  ];
  for (const [value, token] of valid) it(`accepts ${JSON.stringify(value)}`, () => assert.equal(parseBearer(value), token));

  const invalid = ['', 'Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', 'Bearer\tabc', 'Bearer abc def', 'Bearer abc, Bearer def', 'Token abc', 'Bearerabc', ' Bearer abc', 'Bearer abc ', 'Bearer a=b', 'Bearer "abc"'];
  for (const value of invalid) it(`rejects ${JSON.stringify(value)}`, () => assert.throws(() => parseBearer(value), isAuthn('malformed_authorization')));

  it('a b64token that is not a compact JWS is malformed_token', async () => {
    await assert.rejects(async () => auth.authenticate(bearer('abc+/def=='), 'required'), isAuthn('malformed_token'));
    await assert.rejects(async () => auth.authenticate(bearer('opaque-token'), 'required'), isAuthn('malformed_token'));
  });

  /** Send raw header lines to a real node:http server and collect what each call form concludes. */
  async function rawRequest(headerLines: string): Promise<string[]> {
    const outcomes: string[] = [];
    const settle = (p: Identity | null | Promise<Identity | null>): Promise<unknown> =>
      Promise.resolve(p).then(
        (identity) => outcomes.push(identity === null ? 'anonymous' : `allowed:${identity.sub}`),
        (err: AuthnError) => outcomes.push(err.reason),
      );
    const srv = createServer((req, res) => {
      void (async () => {
        await settle(auth.authenticate(req, 'required')); // preferred: the request itself
        await settle(auth.authenticate(req.headers, 'required', req.rawHeaders)); // interface form
        await settle(auth.authenticate(req.headers, 'required')); // headers only: blind to duplicates
        res.end();
      })();
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address() as AddressInfo;
    await new Promise<void>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.write(`GET / HTTP/1.1\r\nHost: x\r\n${headerLines}Connection: close\r\n\r\n`);
      });
      socket.on('data', () => {});
      socket.on('error', reject);
      socket.on('close', () => resolve());
    });
    srv.close();
    return outcomes;
  }

  it('duplicate Authorization headers on a real node:http request', async () => {
    const token = await signToken(es, baseClaims());
    const outcomes = await rawRequest(`Authorization: Bearer ${token}\r\nauthorization: Bearer forged.forged.forged\r\n`);
    // Node keeps only the first Authorization in req.headers: only rawHeaders reveal the second.
    assert.deepEqual(outcomes, ['multiple_authorization', 'multiple_authorization', 'allowed:alice']);
  });

  it('a single Authorization header on a real node:http request', async () => {
    const token = await signToken(es, baseClaims());
    assert.deepEqual(await rawRequest(`AUTHORIZATION:   bearer ${token}  \r\n`), ['allowed:alice', 'allowed:alice', 'allowed:alice']);
    assert.deepEqual(await rawRequest(''), ['missing_token', 'missing_token', 'missing_token']);
  });

  it('a header named "headers" or "rawheaders" cannot make a header bag look like a request', async () => {
    const token = await signToken(es, baseClaims());
    const bag = { headers: 'x', rawheaders: 'y', authorization: `Bearer ${token}` } as IncomingHttpHeaders;
    assert.equal((await auth.authenticate(bag, 'required'))?.sub, 'alice');
  });
});

describe('auth modes', () => {
  let valid: string;
  before(async () => {
    valid = await signToken(es, baseClaims());
  });

  it('none: never looks at Authorization', async () => {
    assert.equal(await auth.authenticate({}, 'none'), null);
    assert.equal(await auth.authenticate(bearer('garbage'), 'none'), null);
    assert.equal(await auth.authenticate({}, 'none', ['authorization', 'a', 'authorization', 'b']), null);
  });

  it('optional: absent → null, valid → identity, present but bad → error', async () => {
    assert.equal(await auth.authenticate({ host: 'x' }, 'optional', ['Host', 'x']), null);
    assert.equal((await auth.authenticate(bearer(valid), 'optional'))?.sub, 'alice');
    await assert.rejects(async () => auth.authenticate(bearer(algNoneToken(baseClaims())), 'optional'), isAuthn('algorithm_not_allowed'));
    await assert.rejects(async () => auth.authenticate({ authorization: '' }, 'optional', ['Authorization', '']), isAuthn('malformed_authorization'));
    await assert.rejects(async () => auth.authenticate({ authorization: 'Basic x' }, 'optional'), isAuthn('malformed_authorization'));
    await assert.rejects(async () => auth.authenticate({}, 'optional', ['authorization', 'a', 'authorization', 'b']), isAuthn('multiple_authorization'));
  });

  it('required: absent → missing_token with no RFC 6750 error code', async () => {
    await assert.rejects(async () => auth.authenticate({}, 'required'), (err: unknown) => {
      isAuthn('missing_token')(err);
      assert.equal((err as AuthnError).bearerError, undefined);
      return true;
    });
    assert.equal((await auth.authenticate(bearer(valid), 'required', ['Authorization', `Bearer ${valid}`]))?.sub, 'alice');
  });

  it('an unknown mode is a programming error, never an allow', async () => {
    await assert.rejects(async () => auth.authenticate(bearer(valid), 'sometimes' as never), TypeError);
  });
});

describe('clock tolerance edges (controllable now)', () => {
  const T = 2_000_000_000;
  let clocked: JwtAuthenticator;
  let strict: JwtAuthenticator;
  before(async () => {
    clocked = track(createAuthenticator([issuerConfig({ jwks_url: server.url, clock_tolerance_s: 30 })], { now: () => T }));
    strict = track(createAuthenticator([issuerConfig({ jwks_url: server.url, clock_tolerance_s: 0 })], { now: () => T + 0.999 }));
    await Promise.all([clocked.prefetch(), strict.prefetch()]);
  });

  const cases: [string, Record<string, unknown>, 'clocked' | 'strict', AuthnReason | 'ok'][] = [
    ['exp = now - tolerance → expired', { exp: T - 30 }, 'clocked', 'token_expired'],
    ['exp = now - tolerance + 1 → ok', { exp: T - 29 }, 'clocked', 'ok'],
    ['nbf = now + tolerance → ok', { nbf: T + 30, exp: T + 60 }, 'clocked', 'ok'],
    ['nbf = now + tolerance + 1 → not yet valid', { nbf: T + 31, exp: T + 60 }, 'clocked', 'token_not_yet_valid'],
    ['tolerance 0: exp = now → expired (fractional second floored)', { exp: T }, 'strict', 'token_expired'],
    ['tolerance 0: exp = now + 1 → ok', { exp: T + 1 }, 'strict', 'ok'],
    ['tolerance 0: nbf = now → ok', { nbf: T, exp: T + 5 }, 'strict', 'ok'],
    ['tolerance 0: nbf = now + 1 → not yet valid', { nbf: T + 1, exp: T + 5 }, 'strict', 'token_not_yet_valid'],
    // A future `iat` is covered by clock_tolerance_s exactly like `nbf` (issue 9: one day ahead was accepted).
    ['iat one day in the future → not yet valid', { iat: T + 86_400, exp: T + 90_000 }, 'clocked', 'token_not_yet_valid'],
    ['iat = now + tolerance → ok', { iat: T + 30, exp: T + 60 }, 'clocked', 'ok'],
    ['iat = now + tolerance + 1 → not yet valid', { iat: T + 31, exp: T + 60 }, 'clocked', 'token_not_yet_valid'],
    ['tolerance 0: iat = now + 1 → not yet valid', { iat: T + 1, exp: T + 5 }, 'strict', 'token_not_yet_valid'],
    ['iat in the past is fine (no max age configured)', { iat: T - 10 ** 6, exp: T + 5 }, 'strict', 'ok'],
    ['no iat at all is fine', { iat: undefined, exp: T + 5 }, 'strict', 'ok'],
  ];
  for (const [name, claims, which, expected] of cases) {
    it(name, async () => {
      const token = await signToken(es, baseClaims(claims, T));
      const a = which === 'clocked' ? clocked : strict;
      if (expected === 'ok') assert.ok(await a.verifyToken(token));
      else await assert.rejects(a.verifyToken(token), isAuthn(expected));
    });
  }
});

describe('claim mapping through verification', () => {
  let mapped: JwtAuthenticator;
  before(async () => {
    mapped = track(
      createAuthenticator([
        issuerConfig({
          jwks_url: server.url,
          required_claims: ['sub'],
          claims: { roles: 'realm_access.roles', groups: 'groups', scopes: 'scope', tenant: 'tenant' },
        }),
      ]),
    );
    await mapped.prefetch();
  });

  it('nested roles, scope string, groups, tenant', async () => {
    const identity = await mapped.verifyToken(
      await signToken(es, baseClaims({ realm_access: { roles: ['admin', 3, 'viewer'] }, groups: 'Domain Admins', scope: 'read write', tenant: 'acme' })),
    );
    assert.deepEqual(
      { roles: identity.roles, groups: identity.groups, scopes: identity.scopes, tenant: identity.tenant, iss: identity.iss },
      { roles: ['admin', 'viewer'], groups: ['Domain Admins'], scopes: ['read', 'write'], tenant: 'acme', iss: 'https://idp.test' },
    );
    assert.equal(identity.claims.tenant, 'acme');
    assert.ok(Object.isFrozen(identity.claims));
    assert.equal(typeof identity.exp, 'number');
  });

  it('scope as an array; missing tenant → ""', async () => {
    const identity = await mapped.verifyToken(await signToken(es, baseClaims({ scope: ['read', 'write'] })));
    assert.deepEqual(identity.scopes, ['read', 'write']);
    assert.equal(identity.tenant, '');
    assert.deepEqual(identity.roles, []);
  });

  it('required_claims are enforced', async () => {
    await assert.rejects(mapped.verifyToken(await signToken(es, baseClaims({ sub: undefined }))), isAuthn('missing_claim'));
  });

  it('tenant of the wrong type → invalid_claim', async () => {
    await assert.rejects(mapped.verifyToken(await signToken(es, baseClaims({ tenant: 7 }))), isAuthn('invalid_claim'));
  });
});

describe('several issuers', () => {
  let other: JwksServer;
  let otherKey: TestKey;
  let multi: JwtAuthenticator;
  before(async () => {
    otherKey = await generateTestKey('RS256');
    other = await startJwksServer(jwksOf(otherKey));
    multi = track(
      createAuthenticator([
        issuerConfig({ jwks_url: server.url }),
        issuerConfig({ id: 'partner', issuer: 'https://partner.test', jwks_url: other.url, audiences: ['regate-partner'], algorithms: ['RS256'] }),
      ]),
    );
  });
  after(() => other.close());

  it('each token is verified by its own issuer only', async () => {
    const a = await multi.verifyToken(await signToken(es, baseClaims()));
    assert.equal(a.issuerId, 'idp');
    const b = await multi.verifyToken(await signToken(otherKey, baseClaims({ iss: 'https://partner.test', aud: 'regate-partner' })));
    assert.equal(b.issuerId, 'partner');
    assert.equal(b.iss, 'https://partner.test');
  });

  it("a partner-signed token claiming the main issuer is refused (no cross-issuer keys)", async () => {
    await assert.rejects(multi.verifyToken(await signToken(otherKey, baseClaims())), isAuthn('unknown_key'));
    // And the main issuer's key cannot vouch for the partner.
    await assert.rejects(multi.verifyToken(await signToken(rs, baseClaims({ iss: 'https://partner.test', aud: 'regate-partner' }))), isAuthn('unknown_key'));
  });

  it('audiences are per issuer', async () => {
    await assert.rejects(multi.verifyToken(await signToken(otherKey, baseClaims({ iss: 'https://partner.test' }))), isAuthn('invalid_audience'));
  });

  it('ready() is true only when every issuer has keys', async () => {
    const down = await startJwksServer(jwksOf(es));
    down.mode = 'down';
    const events: string[] = [];
    const a = track(
      createAuthenticator([issuerConfig({ jwks_url: server.url }), issuerConfig({ id: 'down', issuer: 'https://down.test', jwks_url: down.url })], {
        onJwksRefresh: (id, result) => events.push(`${id}:${result}`),
      }),
    );
    const results = await a.prefetch();
    assert.deepEqual(results, [
      { issuerId: 'idp', ready: true },
      { issuerId: 'down', ready: false },
    ]);
    assert.equal(a.ready(), false);
    assert.deepEqual(events.sort(), ['down:error', 'idp:success']);
    await assert.rejects(a.verifyToken(await signToken(es, baseClaims({ iss: 'https://down.test' }))), isAuthn('jwks_unavailable'));
    // The healthy issuer is unaffected.
    assert.ok(await a.verifyToken(await signToken(es, baseClaims())));
    a.close();
    await down.close();
  });
});

describe('configuration guards', () => {
  const cases: [string, Parameters<typeof issuerConfig>[0], RegExp][] = [
    ['HS256 with jwks_url', { jwks_url: 'http://127.0.0.1:1/jwks', algorithms: ['RS256', 'HS256'] }, /unsupported algorithm "HS256"; regate verifies with public keys only/],
    ['HS256 with jwks_file', { jwks_file: '/nonexistent.json', algorithms: ['HS256'] }, /unsupported algorithm "HS256"/],
    ['alg none', { jwks_url: 'http://127.0.0.1:1/jwks', algorithms: ['none'] }, /unsupported algorithm "none"/],
    ['empty allowlist', { jwks_url: 'http://127.0.0.1:1/jwks', algorithms: [] }, /at least one algorithm/],
    ['no audiences', { jwks_url: 'http://127.0.0.1:1/jwks', audiences: [] }, /at least one audience/],
  ];
  for (const [name, overrides, pattern] of cases) {
    it(`${name} → ConfigError`, () => {
      assert.throws(() => createAuthenticator([issuerConfig(overrides)], { source: '/etc/regate.yaml' }), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.file, '/etc/regate.yaml');
        assert.match(err.message, pattern);
        return true;
      });
    });
  }

  it('duplicate issuer → ConfigError', () => {
    assert.throws(
      () => createAuthenticator([issuerConfig({ jwks_url: server.url }), issuerConfig({ id: 'b', jwks_url: server.url })]),
      (err: unknown) => err instanceof ConfigError && err.keyPath === '/issuers/1/issuer',
    );
  });
});

describe('jwks_file issuers', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'regate-jwt-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('verify with no network and are ready at once', async () => {
    const file = join(dir, 'jwks.json');
    writeFileSync(file, JSON.stringify(jwksOf(es)));
    const a = track(createAuthenticator([issuerConfig({ jwks_file: file })]));
    assert.equal(a.ready(), true);
    assert.equal((await a.verifyToken(await signToken(es, baseClaims()))).sub, 'alice');
  });

  it('an RSA key without "alg" is never usable as an HMAC secret', async () => {
    const file = join(dir, 'rsa.json');
    writeFileSync(file, JSON.stringify({ keys: [{ ...rs.publicJwk, alg: undefined }] }));
    const a = track(createAuthenticator([issuerConfig({ jwks_file: file, algorithms: ['RS256'] })]));
    await assert.rejects(a.verifyToken(await hs256WithPublicKey(rs, baseClaims(), 'pem')), isAuthn('algorithm_not_allowed'));
    await assert.rejects(a.verifyToken(await hs256WithPublicKey(rs, baseClaims(), 'jwk')), isAuthn('algorithm_not_allowed'));
    assert.ok(await a.verifyToken(await signToken(rs, baseClaims())));
  });

  it('a kid-less token needs exactly one candidate key', async () => {
    const file = join(dir, 'two.json');
    const second = await generateTestKey('ES256');
    writeFileSync(file, JSON.stringify(jwksOf(es, second)));
    const a = track(createAuthenticator([issuerConfig({ jwks_file: file })]));
    await assert.rejects(a.verifyToken(await signToken(es, baseClaims(), { kid: undefined })), isAuthn('unknown_key'));
    const single = join(dir, 'one.json');
    writeFileSync(single, JSON.stringify(jwksOf(es)));
    const b = track(createAuthenticator([issuerConfig({ jwks_file: single })]));
    assert.ok(await b.verifyToken(await signToken(es, baseClaims(), { kid: undefined })));
  });
});

describe('verified-token cache hook', () => {
  it('only successes are cached, and a hit is re-checked against exp', async () => {
    const store = new Map<string, Identity>();
    const cache: VerifiedTokenCache = {
      get: (t) => store.get(t),
      set: (t, identity) => void store.set(t, identity),
    };
    let now = nowSeconds();
    const a = track(createAuthenticator([issuerConfig({ jwks_url: server.url, clock_tolerance_s: 0 })], { cache, now: () => now }));
    await a.prefetch();
    const good = await signToken(es, baseClaims({ exp: now + 60 }, now));
    const bad = await signToken(es, baseClaims({ aud: 'x' }, now));
    const first = await a.verifyToken(good);
    assert.equal(await a.verifyToken(good), first);
    await assert.rejects(a.verifyToken(bad), isAuthn('invalid_audience'));
    assert.deepEqual([...store.keys()], [good]);
    now += 61;
    await assert.rejects(a.verifyToken(good), isAuthn('token_expired'));
  });

  it('a hit is returned as the identity itself (no promise); a miss, a failure and an expired hit stay promises', async () => {
    const store = new Map<string, Identity>();
    const cache: VerifiedTokenCache = { get: (t) => store.get(t), set: (t, identity) => void store.set(t, identity) };
    let now = nowSeconds();
    const a = track(createAuthenticator([issuerConfig({ jwks_url: server.url, clock_tolerance_s: 0 })], { cache, now: () => now }));
    await a.prefetch();
    const good = await signToken(es, baseClaims({ exp: now + 60 }, now));
    const miss = a.authenticate(bearer(good), 'required');
    assert.ok(miss instanceof Promise);
    const verified = await miss;
    const hit = a.authenticate(bearer(good), 'required');
    assert.ok(!(hit instanceof Promise));
    assert.equal(hit, verified);
    assert.equal(a.authenticate({}, 'optional'), null);
    const bad = a.authenticate(bearer('not-a-jws'), 'required');
    assert.ok(bad instanceof Promise);
    await assert.rejects(bad, isAuthn('malformed_token'));
    now += 61;
    const expired = a.authenticate(bearer(good), 'required');
    assert.ok(expired instanceof Promise);
    await assert.rejects(expired, isAuthn('token_expired'));
  });
});

describe('a lookup-hostile header bag', () => {
  it('prototype-named headers and huge headers fail closed', async () => {
    await assert.rejects(async () => auth.authenticate(bearer('x'.repeat(20_000)), 'required'), isAuthn('malformed_token'));
    await assert.rejects(async () => auth.authenticate(JSON.parse('{"__proto__":{"authorization":"Bearer a.b.c"}}') as IncomingHttpHeaders, 'required'), isAuthn('missing_token'));
  });
});
