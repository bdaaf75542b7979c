/**
 * WebSocket authorized at upgrade (issue 13), end to end: a real regate
 * process, a real JWKS server, a real `ws` upstream and `ws` clients (raw
 * sockets for malformed handshakes). Asserts on what each client received,
 * on what the upstream received, on the decision-log line and the closing
 * record, and on /metrics.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { closedPort, rawExchange } from '../helpers/http.ts';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.ts';
import { parseExposition, sampleValue } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { repoRoot, startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { baseClaims, generateTestKey, jwksOf, signToken, TEST_ISSUER, type TestKey } from '../helpers/tokens.ts';
import { startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.ts';

const POLICY = `
package ws.authz

default allow := false

allow if input.subject.sub == "alice"

allow if input.route.id == "open"

# Proof the policy saw the upgrade: the upstream receives this header only for one.
headers := {"x-policy-websocket": "yes"} if input.request.websocket
else := {}

decision := {"allow": allow, "headers": headers}
`;

let jwks: JwksServer;
let upstream: WsUpstream;
/** The same upstream over TLS (wss), its certificate issued by test/fixtures/websocket/ca.pem. */
let secure: WsUpstream;
const FIXTURES = join(repoRoot, 'test', 'fixtures', 'websocket');
let regate: RegateProcess;
let limited: RegateProcess;
let key: TestKey;
let alice: string;
let mallory: string;

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

before(async () => {
  key = await generateTestKey('ES256');
  jwks = await startJwksServer(jwksOf(key));
  upstream = await startWsUpstream();
  secure = await startWsUpstream({ tls: { cert: readFileSync(join(FIXTURES, 'upstream.pem'), 'utf8'), key: readFileSync(join(FIXTURES, 'upstream.key'), 'utf8') } });
  alice = await signToken(key, baseClaims({ aud: 'regate', sub: 'alice' }));
  mallory = await signToken(key, baseClaims({ aud: 'regate', sub: 'mallory' }));
  const bundle = await buildBundle({ files: { 'ws.rego': POLICY }, entrypoints: ['ws/authz/decision'] });
  const ws = (id: string, path: string, extra: Record<string, unknown> = {}) => ({
    id,
    match: { methods: ['GET'], path },
    upstream: 'app',
    websocket: true,
    identity_headers: { 'x-user-id': 'subject.sub' },
    ...extra,
  });
  const common = {
    listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
    issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_url: jwks.url, audiences: ['regate'], algorithms: ['ES256'] }],
    policy: { bundle, default_entrypoint: 'ws/authz/decision' },
    decision_log: { destination: 'stdout' },
    reload: { watch: false },
  };
  [regate, limited] = await Promise.all([
    startRegate(
      writeConfig({
        ...common,
        upstreams: {
          app: { url: upstream.url },
          tls: { url: secure.url },
          down: { url: `http://127.0.0.1:${await closedPort()}`, timeouts: { connect_ms: 500 } },
        },
        routes: [
          ws('echo', '/ws/echo'),
          ws('pause', '/ws/pause'),
          ws('fwd', '/ws/fwd', { forward_authorization: true }),
          ws('refuse', '/refuse'),
          ws('bad101', '/bad101'),
          ws('down', '/down', { upstream: 'down' }),
          ws('secure', '/ws/secure', { upstream: 'tls' }),
          { id: 'plain', match: { methods: ['GET'], path: '/plain' }, upstream: 'app' },
        ],
      }),
      // The test CA is trusted by this process only: the wss upstream's certificate verifies.
      { NODE_EXTRA_CA_CERTS: join(FIXTURES, 'ca.pem') },
    ),
    startRegate(
      writeConfig({
        ...common,
        upstreams: { app: { url: upstream.url }, tls: { url: secure.url } },
        limits: { websocket: { idle_timeout_ms: 1000, max_lifetime_ms: 4000 } },
        shutdown: { grace_ms: 1500 },
        routes: [ws('open', '/ws/open', { auth: 'none', identity_headers: {} }), ws('secure', '/ws/secure', { upstream: 'tls' })],
      }),
    ),
  ]);
});

after(async () => {
  await Promise.all([regate?.stop(), limited?.stop()]);
  await Promise.all([upstream?.close(), secure?.close(), jwks?.close()]);
});

const wsUrl = (base: string, path: string): string => base.replace(/^http/, 'ws') + path;

/** Open a client; resolves with the socket once open, or with the HTTP response that refused it. */
function open(url: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket } | { status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, maxPayload: 256 * 1024 * 1024 });
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    ws.once('error', (err) => reject(err));
  });
}

async function opened(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const r = await open(url, headers);
  assert.ok('ws' in r, `expected a 101, got ${JSON.stringify(r)}`);
  return r.ws;
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve) => ws.once('message', (data, binary) => resolve({ data: data as Buffer, binary })));
}

function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

const handshake = (path: string, extra = '', fields = `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n`): string =>
  `GET ${path} HTTP/1.1\r\nHost: regate.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${fields}Authorization: Bearer ${alice}\r\n${extra}\r\n`;

async function metrics(proc: RegateProcess): Promise<ReturnType<typeof parseExposition>> {
  return parseExposition(await (await fetch(`${proc.adminUrl}/metrics`)).text());
}

describe('WebSocket relayed after the upgrade is authorized', () => {
  it('echoes text, binary and a large message both ways; the policy saw the upgrade; one decision line with 101', async () => {
    const before = upstream.upgrades.length;
    const ws = await opened(wsUrl(regate.proxyUrl, '/ws/echo'), { authorization: `Bearer ${alice}` });
    ws.send('hello regate');
    const text = await nextMessage(ws);
    assert.equal(text.binary, false);
    assert.equal(text.data.toString(), 'hello regate');
    const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 0x00]);
    ws.send(bytes);
    const bin = await nextMessage(ws);
    assert.equal(bin.binary, true);
    assert.deepEqual(bin.data, bytes);
    // 3 MiB: many TCP segments, several reads on each side; the bytes come back intact.
    const large = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < large.length; i++) large[i] = (i * 31) & 0xff;
    ws.send(large);
    const echoed = await nextMessage(ws);
    assert.equal(echoed.data.length, large.length);
    assert.ok(echoed.data.equals(large));
    const closed = closeOf(ws);
    ws.close(1000, 'bye');
    assert.equal((await closed).code, 1000);

    const seen = upstream.upgrades[before]!;
    assert.equal(seen.headers['x-user-id'], 'alice');
    assert.equal(seen.headers['x-policy-websocket'], 'yes');
    assert.equal(seen.headers.authorization, undefined, 'no Authorization without forward_authorization');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-host'], new URL(regate.proxyUrl).host);
    assert.equal(seen.headers.upgrade, 'websocket');
    assert.match(String(seen.headers.connection), /upgrade/i);
    assert.equal(seen.headers['sec-websocket-version'], '13');
    const decision = await regate.waitForDecision((r) => (r.custom as Record<string, unknown>).route_id === 'echo');
    const custom = decision.custom as Record<string, unknown>;
    assert.equal(custom.http_status, 101);
    assert.equal(custom.decision, 'allow');
    assert.equal(custom.upstream_status, 101);
    assert.equal(seen.headers['x-request-id'], decision.decision_id);
    assert.equal(((decision.input as Record<string, unknown>).request as Record<string, unknown>).websocket, true);

    const record = await waitForLog(regate, (l) => l.msg === 'websocket closed' && l.decision_id === decision.decision_id);
    assert.equal(record.route_id, 'echo');
    assert.equal(record.close_reason, 'upstream_closed');
    // Client frames are masked: 4 bytes more each, plus the headers; so at least the payloads.
    assert.ok((record.bytes_to_upstream as number) > large.length + bytes.length + 12);
    assert.ok((record.bytes_to_client as number) > large.length + bytes.length + 12);
    assert.equal(typeof record.duration_ms, 'number');

    const m = await metrics(regate);
    assert.equal(sampleValue(m, 'regate_websocket_connections_total', { route: 'echo', result: 'upgraded' }), 1);
    assert.ok(sampleValue(m, 'regate_websocket_bytes_total', { route: 'echo', direction: 'to_upstream' })! >= (record.bytes_to_upstream as number));
    assert.ok(sampleValue(m, 'regate_websocket_bytes_total', { route: 'echo', direction: 'to_client' })! >= (record.bytes_to_client as number));
    assert.equal(sampleValue(m, 'regate_websocket_connections', { route: 'echo' }), 0);
  });

  it('forwards Authorization only with forward_authorization; client identity headers never pass', async () => {
    const before = upstream.upgrades.length;
    const ws = await opened(wsUrl(regate.proxyUrl, '/ws/fwd'), { authorization: `Bearer ${alice}`, 'x-user-id': 'root', 'x-forwarded-for': '10.9.9.9' });
    const closed = closeOf(ws);
    ws.close();
    await closed;
    const seen = upstream.upgrades[before]!;
    assert.equal(seen.headers.authorization, `Bearer ${alice}`);
    assert.equal(seen.headers['x-user-id'], 'alice');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  });

  it('an https upstream is reached over TLS (wss), its certificate verified', async () => {
    const before = secure.upgrades.length;
    const ws = await opened(wsUrl(regate.proxyUrl, '/ws/secure'), { authorization: `Bearer ${alice}` });
    ws.send('over tls');
    assert.equal((await nextMessage(ws)).data.toString(), 'over tls');
    const closed = closeOf(ws);
    ws.close();
    await closed;
    assert.equal(secure.upgrades[before]?.headers['x-user-id'], 'alice');
    // A regate that does not trust the test CA refuses the same upstream: verification is on.
    const untrusted = await open(wsUrl(limited.proxyUrl, '/ws/secure'), { authorization: `Bearer ${alice}` });
    assert.ok('status' in untrusted);
    assert.equal(untrusted.status, 502);
    assert.equal(secure.upgrades.length, before + 1, 'no upgrade reached the upstream over an unverified connection');
  });

  it('keeps a slow upstream reader from being buffered in regate: the client backs up, then everything arrives', async () => {
    const ws = await opened(wsUrl(regate.proxyUrl, '/ws/pause?pause=1'), { authorization: `Bearer ${alice}` });
    const size = 64 * 1024 * 1024;
    const big = Buffer.alloc(size, 0x5a);
    ws.send(big);
    // The upstream reads nothing: only socket buffers (a few MiB on loopback) can take bytes.
    // Had regate read without backpressure, the client would have written it all out.
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(ws.bufferedAmount > 32 * 1024 * 1024, `client still holds most of the message (bufferedAmount ${ws.bufferedAmount})`);
    const echoed = nextMessage(ws);
    upstream.resumeAll();
    const back = await echoed;
    assert.equal(back.data.length, size);
    assert.ok(back.data.equals(big));
    const closed = closeOf(ws);
    ws.close();
    await closed;
  });
});

describe('WebSocket upgrades refused', () => {
  it('without a token: 401 problem, no 101, nothing reached the upstream', async () => {
    const before = upstream.upgrades.length;
    const r = await open(wsUrl(regate.proxyUrl, '/ws/echo'));
    assert.ok('status' in r);
    assert.equal(r.status, 401);
    assert.equal(r.headers['content-type'], 'application/problem+json');
    assert.match(String(r.headers['www-authenticate']), /^Bearer/);
    assert.equal(JSON.parse(r.body).reason, 'missing_token');
    assert.equal(upstream.upgrades.length, before);
  });

  it('denied by the policy: 403 problem, nothing reached the upstream, counted as refused', async () => {
    const before = upstream.upgrades.length;
    const r = await open(wsUrl(regate.proxyUrl, '/ws/echo'), { authorization: `Bearer ${mallory}` });
    assert.ok('status' in r);
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.body).reason, 'policy_denied');
    assert.equal(upstream.upgrades.length, before);
    const m = await metrics(regate);
    assert.ok(sampleValue(m, 'regate_websocket_connections_total', { route: 'echo', result: 'refused' })! >= 2);
  });

  it('a route without websocket: true refuses the upgrade (400 websocket_not_enabled), also to a valid token', async () => {
    const before = upstream.upgrades.length;
    const r = await open(wsUrl(regate.proxyUrl, '/plain'), { authorization: `Bearer ${alice}` });
    assert.ok('status' in r);
    assert.equal(r.status, 400);
    assert.equal(JSON.parse(r.body).reason, 'websocket_not_enabled');
    assert.equal(upstream.upgrades.length, before);
  });

  it('the upstream refuses: its response is relayed, connection closed', async () => {
    const r = await open(wsUrl(regate.proxyUrl, '/refuse'), { authorization: `Bearer ${alice}` });
    assert.ok('status' in r);
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-upstream'], 'refused');
    assert.equal(r.body, 'upstream says no');
    const decision = await regate.waitForDecision((d) => (d.custom as Record<string, unknown>).route_id === 'refuse');
    assert.equal((decision.custom as Record<string, unknown>).upstream_status, 403);
    const m = await metrics(regate);
    assert.equal(sampleValue(m, 'regate_websocket_connections_total', { route: 'refuse', result: 'upstream_refused' }), 1);
  });

  it('an upstream 101 that is not a valid handshake, or no upstream at all: 502, never a 101', async () => {
    for (const path of ['/bad101', '/down']) {
      const r = await open(wsUrl(regate.proxyUrl, path), { authorization: `Bearer ${alice}` });
      assert.ok('status' in r, path);
      assert.equal(r.status, 502, path);
      assert.equal(r.headers['content-type'], 'application/problem+json');
    }
    const m = await metrics(regate);
    assert.equal(sampleValue(m, 'regate_websocket_connections_total', { route: 'down', result: 'upstream_failed' }), 1);
    assert.equal(sampleValue(m, 'regate_websocket_connections_total', { route: 'bad101', result: 'upstream_failed' }), 1);
  });

  it('malformed handshakes on raw sockets: 400 / 426, connection closed, nothing reached the upstream', async () => {
    const before = upstream.upgrades.length;
    const cases: { name: string; wire: (string | Buffer | number)[]; status: number; reason: string }[] = [
      { name: 'missing key', wire: [handshake('/ws/echo', '', 'Sec-WebSocket-Version: 13\r\n')], status: 400, reason: 'websocket_handshake_invalid' },
      { name: 'key not 16 bytes', wire: [handshake('/ws/echo', '', 'Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n')], status: 400, reason: 'websocket_handshake_invalid' },
      { name: 'two keys', wire: [handshake('/ws/echo', `Sec-WebSocket-Key: ${KEY}\r\n`)], status: 400, reason: 'websocket_handshake_invalid' },
      { name: 'wrong version', wire: [handshake('/ws/echo', '', `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 8\r\n`)], status: 426, reason: 'websocket_version_unsupported' },
      { name: 'missing version', wire: [handshake('/ws/echo', '', `Sec-WebSocket-Key: ${KEY}\r\n`)], status: 400, reason: 'websocket_handshake_invalid' },
      { name: 'POST', wire: [handshake('/ws/echo').replace(/^GET/, 'POST')], status: 400, reason: 'websocket_handshake_invalid' },
      { name: 'body bytes after the head', wire: [handshake('/ws/echo', 'Content-Length: 5\r\n') + 'hello'], status: 400, reason: 'websocket_handshake_invalid' },
      // A masked text frame "hi" pipelined before the 101.
      { name: 'data before the 101', wire: [Buffer.concat([Buffer.from(handshake('/ws/echo')), Buffer.from([0x81, 0x82, 1, 2, 3, 4, 0x68 ^ 1, 0x69 ^ 2])])], status: 400, reason: 'websocket_early_data' },
      { name: 'Upgrade: websocket without Connection: upgrade', wire: [handshake('/ws/echo').replace('Connection: Upgrade\r\n', '')], status: 400, reason: 'websocket_handshake_invalid' },
    ];
    for (const c of cases) {
      const x = await rawExchange(regate.proxyUrl, c.wire);
      assert.equal(x.interim.length, 0, `${c.name}: no 101`);
      assert.equal(x.responses[0]?.status, c.status, `${c.name}: ${x.raw.slice(0, 200)}`);
      assert.equal(JSON.parse(x.responses[0]!.body).reason, c.reason, c.name);
      if (c.status === 426) assert.equal(x.responses[0]!.headers['sec-websocket-version'], '13');
      assert.ok(x.closed, `${c.name}: connection closed`);
    }
    assert.equal(upstream.upgrades.length, before, 'no malformed handshake reached the upstream');
  });

  it('an upgrade pipelined behind a request still being answered is cut, never upgraded', async () => {
    const before = upstream.upgrades.length;
    // Both in one write: node parses the upgrade while the first request is still being handled.
    const x = await rawExchange(regate.proxyUrl, [`GET /plain HTTP/1.1\r\nHost: regate.test\r\nAuthorization: Bearer ${alice}\r\n\r\n${handshake('/ws/echo')}`], 3_000);
    assert.equal(x.interim.length, 0, 'no 101');
    assert.ok(x.responses.every((r) => r.status !== 101));
    assert.ok(x.closed);
    assert.equal(upstream.upgrades.length, before, 'nothing reached the upstream as an upgrade');
  });

  it('an h2c upgrade is not a WebSocket: served as a plain request, Upgrade dropped', async () => {
    const x = await rawExchange(regate.proxyUrl, [`GET /plain HTTP/1.1\r\nHost: regate.test\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nAuthorization: Bearer ${alice}\r\n\r\n`], 2_000);
    assert.equal(x.interim.length, 0);
    assert.equal(x.responses[0]?.status, 200);
    assert.equal(x.responses[0]?.body, 'plain');
  });
});

describe('WebSocket limits and shutdown', () => {
  it('an idle connection is closed with 1001 at limits.websocket.idle_timeout_ms, both ends told', async () => {
    const index = upstream.connections.length;
    const ws = await opened(wsUrl(limited.proxyUrl, '/ws/open'));
    const up = await upstream.connection(index);
    const closed = await closeOf(ws);
    assert.equal(closed.code, 1001);
    assert.equal(closed.reason, 'idle timeout');
    assert.equal((await up.closed).code, 1001);
    const record = await waitForLog(limited, (l) => l.msg === 'websocket closed' && l.close_reason === 'idle_timeout');
    assert.equal(record.route_id, 'open');
  });

  it('a busy connection is closed at limits.websocket.max_lifetime_ms', async () => {
    const ws = await opened(wsUrl(limited.proxyUrl, '/ws/open'));
    // Traffic every 300 ms: never idle for the 1 s idle timeout.
    const timer = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('tick'), 300);
    const closed = await closeOf(ws);
    clearInterval(timer);
    assert.equal(closed.code, 1001);
    assert.equal(closed.reason, 'max lifetime reached');
    await waitForLog(limited, (l) => l.msg === 'websocket closed' && l.close_reason === 'max_lifetime');
  });

  it('shutdown closes open connections with 1001 at the grace deadline, then exits 0', async () => {
    const index = upstream.connections.length;
    const ws = await opened(wsUrl(limited.proxyUrl, '/ws/open'));
    const up = await upstream.connection(index);
    const timer = setInterval(() => ws.readyState === WebSocket.OPEN && ws.ping(), 300);
    const closed = closeOf(ws);
    const exit = limited.stop();
    const c = await closed;
    clearInterval(timer);
    assert.equal(c.code, 1001);
    assert.equal(c.reason, 'shutting down');
    assert.equal((await up.closed).code, 1001);
    assert.equal(await exit, 0);
    assert.ok(limited.logs.some((l) => l.msg === 'websocket closed' && l.close_reason === 'shutdown'));
  });
});

async function waitForLog(proc: RegateProcess, pred: (l: Record<string, unknown>) => boolean, timeoutMs = 5_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = proc.logs.find(pred);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no matching log record within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
