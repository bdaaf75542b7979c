/**
 * Issue 13, TLS on the proxy listener, against a real regate process, a real
 * JWKS server and a real upstream: HTTPS with and without client
 * certificates, `input.request.tls`, `auth: mtls`, the HTTP/1.1 framing
 * refusals on TLS sockets, certificate hot reload and drain.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, renameSync } from 'node:fs';
import { once } from 'node:events';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { rawExchange, type RawExchange } from '../helpers/http.ts';
import { decodeIdentityHeader } from '../helpers/identity-headers.ts';
import { parseExposition, sampleValue } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { repoRoot, startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.ts';
import { baseClaims, generateTestKey, jwksOf, signToken, TEST_ISSUER } from '../helpers/tokens.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

const FIXTURES = join(repoRoot, 'test/fixtures/tls');
const pem = (name: string): Buffer => readFileSync(join(FIXTURES, name));
const CA = pem('ca.pem');

const POLICY = `
package tlsit.authz

default allow := false

allow if input.route.id == "public"

allow if {
	input.route.id == "echo"
	input.subject.authenticated
}

# auth: mtls routes: the certificate identity, and what the policy can read of the certificate.
allow if {
	input.route.id == "agents"
	startswith(input.subject.sub, "spiffe://regate.test/")
	input.request.tls.client_cert.issuer == "CN=regate test CA,O=regate test"
}

allow if {
	input.route.id == "jobs"
	input.subject.sub == "batch-job"
	not input.request.tls.client_cert.spiffe_id
}

decision := {"allow": allow}
`;

let jwks: JwksServer;
let upstream: TestUpstream;
let regate: RegateProcess;
let required: RegateProcess;
let token: string;
let tlsDir: string;
let bundle: string;

const client = (name: string): tls.ConnectionOptions => ({ cert: pem(`${name}.pem`), key: pem(`${name}-key.pem`) });

function configOf(clientAuth: 'optional' | 'required', dir: string): string {
  const route = (id: string, path: string, extra: Record<string, unknown> = {}) => ({ id, match: { methods: ['GET', 'POST'], path }, upstream: 'app', ...extra });
  return writeConfig(
    {
      listen: {
        proxy: { host: '127.0.0.1', port: 0, tls: { cert_file: join(dir, 'cert.pem'), key_file: join(dir, 'key.pem'), ca_file: join(dir, 'ca.pem'), client_auth: clientAuth } },
        admin: { host: '127.0.0.1', port: 0 },
        authz: { protocol: 'nginx', host: '127.0.0.1', port: 0, tls: { cert_file: join(dir, 'cert.pem'), key_file: join(dir, 'key.pem') } },
      },
      upstreams: { app: { url: upstream.url } },
      issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_url: jwks.url, audiences: ['regate'], algorithms: ['ES256'] }],
      policy: { bundle, default_entrypoint: 'tlsit/authz/decision' },
      decision_log: { destination: 'stdout' },
      shutdown: { grace_ms: 8000 },
      routes: [
        route('echo', '/echo/{rest*}'),
        route('public', '/public/{rest*}', { auth: 'none' }),
        route('agents', '/agents/{rest*}', { auth: 'mtls', identity_headers: { 'x-client-id': 'subject.sub', 'x-client-issuer': 'subject.iss' } }),
        route('jobs', '/jobs/{rest*}', { auth: 'mtls', identity_headers: { 'x-client-id': 'subject.sub' } }),
      ],
    },
    dir,
  );
}

function tlsDirWith(cert: string, key: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'regate-tls-it-'));
  copyFileSync(join(FIXTURES, cert), join(dir, 'cert.pem'));
  copyFileSync(join(FIXTURES, key), join(dir, 'key.pem'));
  copyFileSync(join(FIXTURES, 'ca.pem'), join(dir, 'ca.pem'));
  return dir;
}

before(async () => {
  const key = await generateTestKey('ES256');
  jwks = await startJwksServer(jwksOf(key));
  upstream = await startUpstreamServer();
  bundle = await buildBundle({ files: { 'authz.rego': POLICY }, entrypoints: ['tlsit/authz/decision'] });
  tlsDir = tlsDirWith('server.pem', 'server-key.pem');
  [regate, required] = await Promise.all([startRegate(configOf('optional', tlsDir)), startRegate(configOf('required', tlsDirWith('server.pem', 'server-key.pem')))]);
  token = await signToken(key, baseClaims({ aud: 'regate', sub: 'alice' }));
});

after(async () => {
  await regate?.stop();
  await required?.stop();
  await upstream?.close();
  await jwks?.close();
});

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  readonly socket: tls.TLSSocket;
}

/** One HTTPS request, trusting the test CA. */
function get(base: string, path: string, options: https.RequestOptions = {}): Promise<Reply> {
  const u = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = https.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, ca: CA, agent: false, ...options }, (res) => {
      // Taken now: a keep-alive socket is handed back to its agent at the end.
      const socket = res.socket as tls.TLSSocket;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, socket }));
    });
    req.on('error', reject);
    req.end();
  });
}

const tlsInputOf = (d: Record<string, unknown>): Record<string, unknown> | undefined => ((d.input as Record<string, unknown>).request as Record<string, unknown>).tls as Record<string, unknown> | undefined;

describe('TLS listener: HTTPS and input.request.tls', () => {
  it('the listener is HTTPS; a request is forwarded with X-Forwarded-Proto: https and the policy sees version and cipher', async () => {
    assert.match(regate.proxyUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    const r = await get(regate.proxyUrl, '/echo/hello', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200, r.body);
    const seen = await upstream.waitForRequest('/echo/hello');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    const d = await regate.waitForDecision((x) => (x.input as { request?: { path?: string } } | undefined)?.request?.path === '/echo/hello');
    const t = tlsInputOf(d)!;
    assert.equal(t.version, 'TLSv1.3');
    assert.match(String(t.cipher), /^TLS_/);
    assert.equal(t.client_cert, undefined, 'no certificate was sent');
  });

  it('a verified client certificate reaches the policy input with every documented field', async () => {
    const r = await get(regate.proxyUrl, '/echo/with-cert', { headers: { authorization: `Bearer ${token}` }, ...client('client') });
    assert.equal(r.status, 200, r.body);
    const d = await regate.waitForDecision((x) => (x.input as { request?: { path?: string } } | undefined)?.request?.path === '/echo/with-cert');
    const cert = tlsInputOf(d)!.client_cert as Record<string, unknown>;
    assert.deepEqual(cert.sans, { dns: ['agent-a.regate.test'], uri: ['spiffe://regate.test/ns/ml/sa/agent-a'], email: ['agent-a@regate.test'], ip: [] });
    assert.equal(cert.subject, 'CN=agent-a,OU=agents,O=regate test');
    assert.equal(cert.issuer, 'CN=regate test CA,O=regate test');
    assert.equal(cert.spiffe_id, 'spiffe://regate.test/ns/ml/sa/agent-a');
    assert.match(String(cert.fingerprint_sha256), /^[0-9a-f]{64}$/);
    assert.match(String(cert.not_after), /^21\d\d-/);
  });

  it('client_auth optional: a certificate from another CA or an expired one is simply absent from the input', async () => {
    for (const [name, path] of [['client-other-ca', '/echo/other-ca'], ['client-expired', '/echo/expired']] as const) {
      const r = await get(regate.proxyUrl, path, { headers: { authorization: `Bearer ${token}` }, ...client(name) });
      assert.equal(r.status, 200, r.body);
      const d = await regate.waitForDecision((x) => (x.input as { request?: { path?: string } } | undefined)?.request?.path === path);
      assert.deepEqual(Object.keys(tlsInputOf(d)!).sort(), ['cipher', 'version'], name);
    }
  });
});

describe('auth: mtls', () => {
  it('a SPIFFE client certificate is the identity: subject.sub is the SPIFFE ID, no token needed', async () => {
    const r = await get(regate.proxyUrl, '/agents/run', client('client'));
    assert.equal(r.status, 200, r.body);
    const seen = await upstream.waitForRequest('/agents/run');
    assert.deepEqual(decodeIdentityHeader(seen.headers['x-client-id'] as string), ['spiffe://regate.test/ns/ml/sa/agent-a']);
    assert.deepEqual(decodeIdentityHeader(seen.headers['x-client-issuer'] as string), ['CN=regate test CA,O=regate test']);
    const d = await regate.waitForDecision((x) => (x.input as { request?: { path?: string } } | undefined)?.request?.path === '/agents/run');
    const subject = (d.input as Record<string, unknown>).subject as Record<string, unknown>;
    assert.equal(subject.authenticated, true);
    assert.equal(subject.sub, 'spiffe://regate.test/ns/ml/sa/agent-a');
    assert.deepEqual((d.input as Record<string, unknown>).token, {});
    assert.equal(((d.custom as Record<string, unknown>).authn as Record<string, unknown>).issuer, 'mtls');
  });

  it('without a SPIFFE URI SAN the subject CN is the identity', async () => {
    const r = await get(regate.proxyUrl, '/jobs/nightly', client('client-cn'));
    assert.equal(r.status, 200, r.body);
    const seen = await upstream.waitForRequest('/jobs/nightly');
    assert.deepEqual(decodeIdentityHeader(seen.headers['x-client-id'] as string), ['batch-job']);
  });

  it('no verified certificate → 401 client_cert_required, never forwarded: none, a bearer token, another CA, expired', async () => {
    const cases: [string, https.RequestOptions][] = [
      ['none', {}],
      ['bearer', { headers: { authorization: `Bearer ${token}` } }],
      ['other-ca', client('client-other-ca')],
      ['expired', client('client-expired')],
    ];
    for (const [name, options] of cases) {
      const r = await get(regate.proxyUrl, `/agents/refused-${name}`, options);
      assert.equal(r.status, 401, `${name}: ${r.body}`);
      assert.equal(r.headers['www-authenticate'], 'ClientCertificate realm="regate"');
      assert.equal((JSON.parse(r.body) as { reason: string }).reason, 'client_cert_required', name);
    }
    assert.equal(upstream.requests.filter((q) => q.url.startsWith('/agents/refused-')).length, 0);
  });

  it('a certificate with two spiffe URIs (no X.509-SVID) → 401 client_cert_invalid, not its CN', async () => {
    const r = await get(regate.proxyUrl, '/agents/confused', client('client-two-spiffe'));
    assert.equal(r.status, 401, r.body);
    assert.equal((JSON.parse(r.body) as { reason: string }).reason, 'client_cert_invalid');
  });
});

describe('the authz listener on TLS', () => {
  it('serves nginx check requests over HTTPS; its TLS peer is the proxy, so auth: mtls is never satisfied there', async () => {
    assert.match(regate.authzUrl, /^https:\/\//);
    const check = (uri: string): Promise<Reply> => get(regate.authzUrl, '/', { headers: { 'x-original-method': 'GET', 'x-original-uri': uri, 'x-original-host': 'models.test', 'x-real-ip': '10.0.0.9' } });
    assert.equal((await check('/public/via-authz')).status, 200);
    const r = await check('/agents/via-authz');
    assert.equal(r.status, 401, r.body);
    assert.equal((JSON.parse(r.body) as { reason: string }).reason, 'client_cert_required');
    const d = await regate.waitForDecision((x) => (x.input as { request?: { path?: string } } | undefined)?.request?.path === '/public/via-authz');
    assert.equal(tlsInputOf(d), undefined, 'the proxy-to-regate TLS is not the client’s');
  });
});

describe('client_auth: required', () => {
  it('the handshake fails without a verified certificate: none, another CA, expired', async () => {
    for (const options of [{}, client('client-other-ca'), client('client-expired')]) {
      await assert.rejects(get(required.proxyUrl, '/public/x', options), (err: NodeJS.ErrnoException) => /alert|ECONNRESET|socket hang up|certificate/i.test(`${err.code} ${err.message}`));
    }
    const r = await get(required.proxyUrl, '/agents/ok', client('client'));
    assert.equal(r.status, 200, r.body);
    const metrics = parseExposition(await (await fetch(`${required.adminUrl}/metrics`)).text());
    // Missing certificates fail inside OpenSSL's handshake and are counted; node cuts the others after it.
    assert.ok((sampleValue(metrics, 'regate_tls_handshake_errors_total', { listener: 'proxy' }) ?? 0) >= 1);
  });
});

describe('HTTP/1.1 framing on TLS sockets: the same refusals as plaintext', () => {
  const host = (): string => new URL(regate.proxyUrl).host;
  const exchange = (parts: (string | number)[]): Promise<RawExchange> => rawExchange(regate.proxyUrl, parts, 5_000, { ca: CA });
  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 300));

  it('Content-Length with Transfer-Encoding → 400, closed, the smuggled follower never reaches the upstream', async () => {
    const x = await exchange([`POST /public/cl-te HTTP/1.1\r\nHost: ${host()}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /public/smuggled-tls HTTP/1.1\r\nHost: ${host()}\r\n\r\n`]);
    assert.equal(x.responses[0]?.status, 400, x.raw.slice(0, 300));
    assert.equal(x.responses.length, 1);
    assert.ok(x.closed);
    await settle();
    assert.equal(upstream.requests.filter((q) => q.url.startsWith('/public/smuggled-tls') || q.url.startsWith('/public/cl-te')).length, 0);
  });

  it('gzip, chunked → 400 unsupported_transfer_coding and close', async () => {
    const x = await exchange([`POST /public/te HTTP/1.1\r\nHost: ${host()}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /public/smuggled-te HTTP/1.1\r\nHost: ${host()}\r\n\r\n`]);
    assert.equal(x.responses[0]?.status, 400);
    assert.equal((JSON.parse(x.responses[0]!.body) as { reason: string }).reason, 'unsupported_transfer_coding');
    assert.equal(x.responses.length, 1);
    assert.ok(x.closed);
    await settle();
    assert.equal(upstream.requests.filter((q) => q.url.startsWith('/public/smuggled-te')).length, 0);
  });

  it('an oversized header block → 431 problem document; duplicate Content-Length → 400', async () => {
    const big = await exchange([`GET /public/big HTTP/1.1\r\nHost: ${host()}\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`]);
    assert.equal(big.responses[0]?.status, 431);
    assert.equal(big.responses[0]!.headers['content-type'], 'application/problem+json');
    const dup = await exchange([`POST /public/dup HTTP/1.1\r\nHost: ${host()}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab`]);
    assert.equal(dup.responses[0]?.status, 400);
    assert.ok(dup.closed);
  });

  it('pipelined requests on one TLS connection are answered in order, each forwarded once', async () => {
    const req = (n: number, last = false): string => `GET /public/pipe-tls-${n} HTTP/1.1\r\nHost: ${host()}\r\n${last ? 'Connection: close\r\n' : ''}\r\n`;
    const x = await exchange([req(1) + req(2) + req(3, true)]);
    assert.deepEqual(x.responses.map((r) => r.status), [200, 200, 200]);
    assert.deepEqual(x.responses.map((r) => (JSON.parse(r.body) as { url: string }).url), ['/public/pipe-tls-1', '/public/pipe-tls-2', '/public/pipe-tls-3']);
    for (const n of [1, 2, 3]) assert.equal(upstream.requests.filter((q) => q.url === `/public/pipe-tls-${n}`).length, 1);
  });

  it('plaintext HTTP on the TLS port gets no HTTP answer and is counted as a handshake error', async () => {
    const before = sampleValue(parseExposition(await (await fetch(`${regate.adminUrl}/metrics`)).text()), 'regate_tls_handshake_errors_total', { listener: 'proxy' }) ?? 0;
    const x = await rawExchange(regate.proxyUrl.replace('https:', 'http:'), [`GET /public/plain HTTP/1.1\r\nHost: ${host()}\r\n\r\n`]);
    assert.ok(x.closed);
    assert.equal(x.responses.filter((r) => r.status >= 200).length, 0, x.raw.slice(0, 100));
    const after = sampleValue(parseExposition(await (await fetch(`${regate.adminUrl}/metrics`)).text()), 'regate_tls_handshake_errors_total', { listener: 'proxy' }) ?? 0;
    assert.equal(after, before + 1);
    assert.equal(upstream.requests.filter((q) => q.url === '/public/plain').length, 0);
  });
});

describe('certificate hot reload (a running regate process)', () => {
  const servedCn = async (): Promise<string> => {
    const s = tls.connect({ port: Number(new URL(regate.proxyUrl).port), host: '127.0.0.1', ca: CA });
    await once(s, 'secureConnect');
    const cn = s.getPeerX509Certificate()!.subject.split('\n').find((l) => l.startsWith('CN='))!.slice(3);
    s.destroy();
    return cn;
  };
  const waitForLog = async (msg: string, count: number): Promise<void> => {
    for (let i = 0; i < 200; i++) {
      if (regate.logs.filter((l) => l.msg === msg && l.listener === 'proxy').length >= count) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(`no ${count}x "${msg}" log line; have ${JSON.stringify(regate.logs.map((l) => l.msg))}`);
  };
  const reloads = async (result: string): Promise<number> =>
    sampleValue(parseExposition(await (await fetch(`${regate.adminUrl}/metrics`)).text()), 'regate_tls_reloads_total', { listener: 'proxy', result }) ?? 0;

  it('swapped files: a new connection sees the new certificate, an open keep-alive connection keeps working; a broken pair keeps the old one', async () => {
    assert.equal(await servedCn(), 'localhost');
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: CA });
    const first = await get(regate.proxyUrl, '/public/before-swap', { agent });
    assert.equal(first.status, 200);
    const kept = first.socket;

    copyFileSync(join(FIXTURES, 'server2.pem'), join(tlsDir, 'cert.new'));
    copyFileSync(join(FIXTURES, 'server2-key.pem'), join(tlsDir, 'key.new'));
    renameSync(join(tlsDir, 'key.new'), join(tlsDir, 'key.pem'));
    renameSync(join(tlsDir, 'cert.new'), join(tlsDir, 'cert.pem'));
    await waitForLog('TLS certificate reloaded', 1);
    assert.equal(await servedCn(), 'localhost (second)');
    assert.equal(await reloads('success'), 1);

    const second = await get(regate.proxyUrl, '/public/after-swap', { agent });
    assert.equal(second.status, 200);
    assert.equal(second.socket, kept, 'the keep-alive connection from before the swap was reused');
    assert.match(kept.getPeerX509Certificate()!.subject, /CN=localhost$/);

    // A key that does not match the certificate: refused, logged, counted; the second pair keeps serving.
    copyFileSync(join(FIXTURES, 'server-key.pem'), join(tlsDir, 'key.pem'));
    await waitForLog('TLS certificate files refused: the previous certificate keeps serving', 1);
    assert.equal(await reloads('failure'), 1);
    assert.equal(await servedCn(), 'localhost (second)');
    const third = await get(regate.proxyUrl, '/public/after-broken', { agent });
    assert.equal(third.status, 200);
    agent.destroy();
  });
});

describe('drain on a TLS listener', () => {
  it('SIGTERM while a slow response streams on a TLS connection: it completes, nothing is cut at the deadline', async () => {
    // Idle sweep and drain follow the TLS socket requests run on, not the TCP socket under it:
    // the stream sends nothing upstream-ward for longer than the idle quiet period (2 s).
    const pending = get(required.proxyUrl, '/public/slow?mode=slow-body&chunks=6&interval=500&size=10', client('client'));
    await upstream.waitForRequest('/public/slow');
    const code = await required.stop();
    // Bounded: a connection cut under the stream would leave the response hanging, not fail it.
    const r = await Promise.race([pending, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('the stream did not complete')), 15_000))]);
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 60, 'the whole body arrived');
    assert.equal(code, 0);
    assert.equal(required.logs.filter((l) => String(l.msg).startsWith('shutdown grace period over')).length, 0);
  });
});
