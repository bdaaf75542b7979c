/**
 * Issue 13, TLS to upstreams (`upstreams.<id>.tls`), against a real regate
 * process and a real HTTPS upstream on loopback that requires a client
 * certificate from the test CA: verification is always on, the CA, client
 * certificate and server name come from the config, and changed files are
 * used by new connections.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { parseExposition, sampleValue } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { repoRoot, startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

const FIXTURES = join(repoRoot, 'test/fixtures/tls');
const fixture = (name: string): string => join(FIXTURES, name);
const pem = (name: string): Buffer => readFileSync(fixture(name));

const POLICY = `
package uptls.authz

default allow := true

decision := {"allow": allow}
`;

let upstream: TestUpstream;
let regate: RegateProcess;
let dir: string;
/** CN of the client certificate the upstream saw, per request path. */
const clientCns = new Map<string, string>();

before(async () => {
  upstream = await startUpstreamServer({ tls: { cert: pem('server.pem'), key: pem('server-key.pem'), ca: pem('ca.pem'), requestCert: true, rejectUnauthorized: true } });
  upstream.setHandler((req, res) => {
    const cert = (req.socket as TLSSocket).getPeerX509Certificate();
    clientCns.set(req.url ?? '', cert?.subject.split('\n').find((l) => l.startsWith('CN='))?.slice(3) ?? '');
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ url: req.url, host: req.headers.host }));
  });
  dir = mkdtempSync(join(tmpdir(), 'regate-uptls-'));
  // The reloading upstream starts out trusting the wrong CA; its client certificate is fine.
  copyFileSync(fixture('other-ca.pem'), join(dir, 'ca.pem'));
  const bundle = await buildBundle({ files: { 'authz.rego': POLICY }, entrypoints: ['uptls/authz/decision'] });
  const client = { cert_file: fixture('client.pem'), key_file: fixture('client-key.pem') };
  const upstreams = {
    good: { url: upstream.url, tls: { ca_file: fixture('ca.pem'), ...client } },
    named: { url: upstream.url, tls: { ca_file: fixture('ca.pem'), servername: 'localhost', min_version: 'TLSv1.3', ...client } },
    nocert: { url: upstream.url, tls: { ca_file: fixture('ca.pem') } },
    wrongca: { url: upstream.url, tls: { ca_file: fixture('other-ca.pem'), ...client } },
    badname: { url: upstream.url, tls: { ca_file: fixture('ca.pem'), servername: 'wrong.example', ...client } },
    publicca: { url: upstream.url, tls: { ...client } },
    reloading: { url: upstream.url, tls: { ca_file: join(dir, 'ca.pem'), ...client }, pool: { keepalive_timeout_ms: 1 } },
  };
  regate = await startRegate(
    writeConfig({
      listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      upstreams,
      policy: { bundle, default_entrypoint: 'uptls/authz/decision' },
      decision_log: { destination: 'stdout' },
      routes: Object.keys(upstreams).map((id) => ({ id, match: { methods: ['GET'], path: `/${id}/{rest*}` }, upstream: id, auth: 'none' })),
    }),
  );
});

after(async () => {
  await regate?.stop();
  await upstream?.close();
});

async function call(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(regate.proxyUrl + path);
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

const metrics = async () => parseExposition(await (await fetch(`${regate.adminUrl}/metrics`)).text());

describe('upstream TLS', () => {
  it('verified against ca_file, with regate’s client certificate: 200, the upstream saw the certificate', async () => {
    const r = await call('/good/a');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(clientCns.get('/good/a'), 'agent-a');
  });

  it('servername: SNI and the name checked are the configured one (the URL is an IP address)', async () => {
    const r = await call('/named/a');
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });

  it('a wrong CA → 502 upstream_tls_error, the TLS reason in the decision log and the operator log, nothing reached the upstream', async () => {
    const r = await call('/wrongca/a');
    assert.equal(r.status, 502);
    assert.equal(r.body.reason, 'upstream_tls_error');
    const d = await regate.waitForDecision((x) => x.decision_id === r.body.decision_id);
    assert.equal((d.custom as Record<string, unknown>).reason, 'upstream_tls_error');
    const log = regate.logs.find((l) => l.msg === 'TLS to the upstream failed: requests answered 502 upstream_tls_error' && l.upstream === 'wrongca');
    assert.ok(log, JSON.stringify(regate.logs.slice(-5)));
    assert.match(String(log.code), /SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/);
    assert.equal(clientCns.has('/wrongca/a'), false);
  });

  it('a server name the certificate does not cover → 502 upstream_tls_error', async () => {
    const r = await call('/badname/a');
    assert.equal(r.status, 502);
    assert.equal(r.body.reason, 'upstream_tls_error');
    await new Promise((res) => setTimeout(res, 100));
    const log = regate.logs.find((l) => l.upstream === 'badname');
    assert.equal(log?.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
    assert.equal(clientCns.has('/badname/a'), false);
  });

  it('no client certificate for an upstream that requires one → 502 upstream_tls_error', async () => {
    const r = await call('/nocert/a');
    assert.equal(r.status, 502);
    assert.equal(r.body.reason, 'upstream_tls_error');
    // TLS 1.3: the refusal is an alert after the handshake, which undici reports as a closed socket.
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(regate.logs.find((l) => l.upstream === 'nocert')?.code, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
  });

  it('without ca_file only public CAs are trusted: the test CA is refused', async () => {
    const r = await call('/publicca/a');
    assert.equal(r.status, 502);
    assert.equal(r.body.reason, 'upstream_tls_error');
  });

  it('changed files are used by new connections: a CA fixed on disk turns 502 into 200; a broken file is refused and counted', async () => {
    assert.equal((await call('/reloading/before')).status, 502);
    copyFileSync(fixture('ca.pem'), join(dir, 'ca.pem'));
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      await new Promise((res) => setTimeout(res, 50));
      if (regate.logs.some((l) => l.upstream === 'reloading' && l.msg === 'upstream TLS files reloaded: new connections use them')) status = (await call(`/reloading/after-${i}`)).status;
    }
    assert.equal(status, 200);
    assert.equal(sampleValue(await metrics(), 'regate_upstream_tls_reloads_total', { upstream: 'reloading', result: 'success' }), 1);

    writeFileSync(join(dir, 'ca.pem'), 'not a certificate\n');
    for (let i = 0; i < 100 && !regate.logs.some((l) => l.upstream === 'reloading' && l.msg === 'upstream TLS files refused: the previous ones stay in use'); i++) {
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(sampleValue(await metrics(), 'regate_upstream_tls_reloads_total', { upstream: 'reloading', result: 'failure' }), 1);
    // The last good CA is still the one new connections use.
    await new Promise((res) => setTimeout(res, 20));
    assert.equal((await call('/reloading/after-broken')).status, 200);
  });
});
