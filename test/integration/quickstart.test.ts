/**
 * The README's Quickstart, end to end — the main job, proved automatically.
 *
 * Everything is the shipped quickstart as-is: examples/quickstart/regate.yaml, its
 * policy (built by `node scripts/build-policy.mjs examples/quickstart`, exactly what
 * `npm start` runs), its published dev key, and the bundled demo model API
 * (examples/quickstart/model-api.mjs) in its own process. Tokens are minted with the
 * real CLI, with the README's own command line (`regate token --config
 * examples/quickstart/regate.yaml --sub alice --role data_scientist`).
 *
 * regate runs the shipped file itself, in place. What a test cannot share with a
 * developer's machine — the ports — is moved the way the README tells users to:
 * REGATE_PROXY_PORT=0, REGATE_ADMIN_PORT=0 and MODEL_API_PORT (the spawned model
 * API's port), which the config reads as `${NAME:-default}`. Issuer, audiences,
 * claim mapping, routes and policy are the quickstart's, and the CLI's tokens for
 * the shipped config work against it.
 *
 * Assertions parse JSON, the SSE stream, the decision log and /metrics; no grepping.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { request } from 'undici';
import { send, type Reply } from '../helpers/http.ts';
import { parseExposition, sampleValue } from '../helpers/metrics.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import { repoRoot, runCli, startRegate, type RegateProcess } from '../helpers/regate-process.ts';

const run = promisify(execFile);

const QUICKSTART = join(repoRoot, 'examples', 'quickstart');
/** The shipped config, as the README passes it to `regate token`. */
const SHIPPED_CONFIG = join(QUICKSTART, 'regate.yaml');
const ENTRYPOINT = 'regate/authz/decision';

const PREDICT = '/v1/models/sentiment/predict';
const METADATA = '/v1/models/sentiment/metadata';
const LOGS = '/v1/models/sentiment/logs';
const ROUTES = { predict: ['POST', PREDICT], metadata: ['GET', METADATA], logs: ['GET', LOGS] } as const;
const TEXT = { text: 'I love this model' };

type Rec = Record<string, any>;

interface ModelApi {
  readonly url: string;
  stop(): Promise<void>;
}

/** `node model-api.mjs 0` in examples/quickstart; resolves with the URL from its JSON "listening" line. */
async function startModelApi(): Promise<ModelApi> {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ['model-api.mjs', '0'], {
    cwd: QUICKSTART,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => (stderr += c));
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`model API did not start within 10 s: ${stderr}`));
    }, 10_000);
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let rec: { url?: unknown };
        try {
          rec = JSON.parse(line) as { url?: unknown };
        } catch {
          continue;
        }
        if (typeof rec.url === 'string') {
          clearTimeout(timer);
          res(rec.url);
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      rej(new Error(`model API exited with ${code} before listening: ${stderr}`));
    });
  });
  return {
    url,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** A token from the real CLI, with the README's command line against the shipped config. */
function cliToken(sub: string, role: string): string {
  const r = runCli(['token', '--config', SHIPPED_CONFIG, '--sub', sub, '--role', role]);
  assert.equal(r.status, 0, `regate token failed (${r.status}): ${r.stderr}`);
  const token = r.stdout.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'regate token prints one compact JWS');
  return token;
}

/** The shipped config as regate reads it with no variables set (the README's ports). */
function shippedDefaults(): Config {
  return parseConfig(readFileSync(SHIPPED_CONFIG, 'utf8'), SHIPPED_CONFIG, { env: {} });
}

let api: ModelApi;
let regate: RegateProcess;
const tokens: Record<'alice' | 'bob' | 'carol', string> = { alice: '', bob: '', carol: '' };

before(async () => {
  // Exactly what `npm start` runs to build the quickstart bundle (output is gitignored;
  // the script builds beside it and renames, so a concurrent reader never sees half a file).
  await run(process.execPath, [join(repoRoot, 'scripts', 'build-policy.mjs'), 'examples/quickstart'], {
    cwd: repoRoot,
    maxBuffer: 16 * 1024 * 1024,
  });
  api = await startModelApi();
  regate = await startRegate(SHIPPED_CONFIG, { REGATE_PROXY_PORT: '0', REGATE_ADMIN_PORT: '0', MODEL_API_PORT: new URL(api.url).port });
  tokens.alice = cliToken('alice', 'data_scientist');
  tokens.bob = cliToken('bob', 'ml_engineer');
  tokens.carol = cliToken('carol', 'analyst');
});

after(async () => {
  await regate?.stop();
  await api?.stop();
});

function call(method: string, path: string, token?: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const h: Record<string, string> = { ...headers };
  if (token !== undefined) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h['content-type'] = 'application/json';
  return send(`${regate.proxyUrl}${path}`, {
    method,
    headers: h,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

/** The first decision record logged at or after index `since` that matches `pred`. */
function decisionSince(since: number, pred: (r: Rec) => boolean): Promise<Rec> {
  return regate.waitForDecision((r) => regate.decisions.indexOf(r) >= since && pred(r as Rec)) as Promise<Rec>;
}

/** The decision record of a problem response, joined by its decision_id. */
function decisionOf(problem: { decision_id: string }): Promise<Rec> {
  return regate.waitForDecision((r) => r.decision_id === problem.decision_id) as Promise<Rec>;
}

/** Checks shared by every decision record of a policy-evaluated request. */
function assertEvaluatedRecord(rec: Rec, routeId: string, status: number, decision: 'allow' | 'deny', sub: string): void {
  assert.equal(rec.path, ENTRYPOINT);
  assert.equal(rec.custom.route_id, routeId);
  assert.equal(rec.custom.http_status, status);
  assert.equal(rec.custom.decision, decision);
  assert.equal(rec.custom.authn.outcome, 'verified');
  assert.equal(rec.custom.authn.issuer, 'quickstart');
  assert.equal(rec.input.subject.sub, sub);
  assert.equal(rec.labels.env, 'quickstart', 'the shipped decision_log labels are in effect');
  // The bundle scripts/build-policy.mjs just built (its revision names the example).
  assert.match(String(rec.bundles?.regate?.revision), /^quickstart-[0-9a-f]{12}$/);
  const raw = JSON.stringify(rec);
  for (const t of Object.values(tokens)) assert.ok(!raw.includes(t), 'no raw token in the decision log');
}

/** 403 problem+json with exactly `reasons`, as the README shows; returns the problem document. */
function assertPolicyDenied(res: Reply, reasons: string[]): { decision_id: string } {
  assert.equal(res.status, 403, `expected 403, got ${res.status}: ${res.text}`);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
  const problem = res.json<Rec>();
  assert.equal(problem.type, 'urn:regate:problem:policy_denied');
  assert.equal(problem.title, 'Forbidden');
  assert.equal(problem.status, 403);
  assert.equal(problem.reason, 'policy_denied');
  assert.deepEqual(problem.reasons, reasons);
  assert.equal(typeof problem.decision_id, 'string');
  assert.ok(problem.decision_id.length > 0, 'the problem carries a decision_id');
  return problem as { decision_id: string };
}

/** Parse a Server-Sent Events body into events ({event, data, id}). */
function parseSse(text: string): { event: string; data: string; id?: string }[] {
  const events: { event: string; data: string; id?: string }[] = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    if (block.trim() === '') continue;
    const ev: { event: string; data: string; id?: string } = { event: 'message', data: '' };
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      const c = line.indexOf(':');
      if (c === 0) continue; // comment
      const field = c === -1 ? line : line.slice(0, c);
      const value = c === -1 ? '' : line.slice(c + 1).replace(/^ /, '');
      if (field === 'event') ev.event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') ev.id = value;
    }
    ev.data = data.join('\n');
    events.push(ev);
  }
  return events;
}

describe('quickstart wiring', () => {
  it('the shipped config is the README\'s (8080, admin 9090, model API on 8000) and regate runs that very file', () => {
    const shipped = shippedDefaults();
    // Plaintext HTTP/1.1 only: no TLS, h2c off, h2 offered only with TLS (the HTTP/2 limits are the defaults).
    const http2 = { h2c: false, h2: true, max_concurrent_streams: 100, max_header_list_bytes: 16384, max_resets: 200, reset_window_ms: 10000, idle_timeout_ms: 65000 };
    assert.deepEqual(shipped.listen, { proxy: { host: '127.0.0.1', port: 8080, http2 }, admin: { host: '127.0.0.1', port: 9090 } });
    assert.deepEqual(Object.keys(shipped.upstreams), ['model-api']);
    assert.equal(shipped.upstreams['model-api']!.url, 'http://127.0.0.1:8000');
    assert.deepEqual(
      shipped.routes.map((r) => r.id),
      ['predict', 'metadata', 'logs'],
    );
    assert.equal(regate.configFile, SHIPPED_CONFIG);
    // The environment moved the ports, and only them.
    const moved = parseConfig(readFileSync(SHIPPED_CONFIG, 'utf8'), SHIPPED_CONFIG, { env: { REGATE_PROXY_PORT: '0', REGATE_ADMIN_PORT: '0', MODEL_API_PORT: new URL(api.url).port } });
    assert.equal(moved.listen.proxy.port, 0);
    assert.equal(moved.listen.admin.port, 0);
    assert.equal(moved.upstreams['model-api']!.url, api.url);
    assert.deepEqual({ ...moved, listen: shipped.listen, upstreams: shipped.upstreams }, shipped);
  });

  it('the model API started from the shipped script binds loopback', () => {
    assert.equal(new URL(api.url).hostname, '127.0.0.1');
  });
});

describe('quickstart: a data scientist', () => {
  it('calls predict and gets the README\'s answer; the model API sees who called', async () => {
    const since = regate.decisions.length;
    const res = await call('POST', PREDICT, tokens.alice, TEXT);
    assert.equal(res.status, 200, res.text);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    // The README's expected output, verbatim.
    assert.deepEqual(res.json(), {
      model: 'sentiment',
      label: 'positive',
      score: 0.7,
      seen_by_model_api: { sub: 'alice', roles: 'data_scientist' },
    });
    const rec = await decisionSince(since, (r) => r.custom?.route_id === 'predict' && r.input?.subject?.sub === 'alice');
    assertEvaluatedRecord(rec, 'predict', 200, 'allow', 'alice');
    assert.equal(rec.custom.upstream_status, 200);
    assert.deepEqual(rec.result, { allow: true, reasons: ['role data_scientist may call predict'] });
  });

  it('may not read the logs: 403 problem+json with the policy\'s reason and a decision_id', async () => {
    const res = await call('GET', LOGS, tokens.alice);
    const problem = assertPolicyDenied(res, ['none of the roles [data_scientist] may call logs']);
    const rec = await decisionOf(problem);
    assertEvaluatedRecord(rec, 'logs', 403, 'deny', 'alice');
    assert.equal(rec.custom.reason, 'policy_denied');
    assert.deepEqual(rec.result, { allow: false, reasons: ['none of the roles [data_scientist] may call logs'] });
  });

  it('may not read metadata: 403', async () => {
    const res = await call('GET', METADATA, tokens.alice);
    const problem = assertPolicyDenied(res, ['none of the roles [data_scientist] may call metadata']);
    const rec = await decisionOf(problem);
    assertEvaluatedRecord(rec, 'metadata', 403, 'deny', 'alice');
  });
});

describe('quickstart: an ML engineer', () => {
  it('reads metadata: 200 from the model API', async () => {
    const since = regate.decisions.length;
    const res = await call('GET', METADATA, tokens.bob);
    assert.equal(res.status, 200, res.text);
    const body = res.json<Rec>();
    assert.equal(body.model, 'sentiment');
    assert.equal(body.task, 'sentiment-analysis');
    assert.deepEqual(body.seen_by_model_api, { sub: 'bob', roles: 'ml_engineer' });
    const rec = await decisionSince(since, (r) => r.custom?.route_id === 'metadata' && r.input?.subject?.sub === 'bob');
    assertEvaluatedRecord(rec, 'metadata', 200, 'allow', 'bob');
    assert.deepEqual(rec.result, { allow: true, reasons: ['role ml_engineer may call metadata'] });
  });

  it('streams the logs as Server-Sent Events through regate, to `event: end`', async () => {
    const since = regate.decisions.length;
    const res = await request(`${regate.proxyUrl}${LOGS}`, {
      method: 'GET',
      headers: { authorization: `Bearer ${tokens.bob}`, accept: 'text/event-stream' },
    });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    // Read chunk by chunk: the model API writes one event every 100 ms, regate must pass them on.
    const chunks: string[] = [];
    for await (const chunk of res.body) chunks.push(Buffer.from(chunk as Uint8Array).toString('utf8'));
    const text = chunks.join('');
    assert.ok(text.includes('event: end'), `stream ends with "event: end": ${text}`);
    const events = parseSse(text);
    assert.equal(events.at(-1)?.event, 'end');
    const data = events.filter((e) => e.event === 'message');
    assert.ok(data.length >= 1, 'at least one log event before the end');
    for (const e of data) JSON.parse(e.data); // every event's data is JSON
    // alice's prediction (made above) reached the model API's log, attributed to her.
    const entries = data.map((e) => JSON.parse(e.data) as Rec);
    assert.ok(
      entries.some((e) => e.caller === 'alice' && e.label === 'positive'),
      `alice's prediction is in the streamed log: ${JSON.stringify(entries)}`,
    );
    const rec = await decisionSince(since, (r) => r.custom?.route_id === 'logs' && r.input?.subject?.sub === 'bob');
    assertEvaluatedRecord(rec, 'logs', 200, 'allow', 'bob');
  });
});

describe('quickstart: everyone else', () => {
  it('no token: 401 with a `Bearer realm="regate"` challenge, and a decision record', async () => {
    const res = await call('GET', METADATA);
    assert.equal(res.status, 401, res.text);
    assert.ok(String(res.headers['www-authenticate']).startsWith('Bearer realm="regate"'), String(res.headers['www-authenticate']));
    assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    const problem = res.json<Rec>();
    assert.equal(problem.status, 401);
    assert.equal(typeof problem.decision_id, 'string');
    const rec = await decisionOf(problem as { decision_id: string });
    assert.equal(rec.custom.route_id, 'metadata');
    assert.equal(rec.custom.http_status, 401);
    assert.equal(rec.custom.decision, 'deny');
    assert.equal(rec.custom.reason, 'missing_token');
    assert.equal(rec.custom.authn.outcome, 'failed');
    // Refused at authentication, before the policy: no `path`, no `result` (README, Decision log).
    assert.equal(rec.path, undefined);
    assert.equal(rec.result, undefined);
  });

  it('a bad token (signature broken): 401 with a `Bearer realm="regate"` challenge', async () => {
    const [h, p, s] = tokens.alice.split('.') as [string, string, string];
    // A different first character changes the first 6 bits of r: never a valid signature.
    const broken = `${h}.${p}.${s.startsWith('A') ? 'B' : 'A'}${s.slice(1)}`;
    const res = await call('GET', METADATA, broken);
    assert.equal(res.status, 401, res.text);
    assert.ok(String(res.headers['www-authenticate']).startsWith('Bearer realm="regate"'), String(res.headers['www-authenticate']));
    const rec = await decisionOf(res.json<{ decision_id: string }>());
    assert.equal(rec.custom.route_id, 'metadata');
    assert.equal(rec.custom.http_status, 401);
    assert.equal(rec.custom.decision, 'deny');
    assert.equal(rec.custom.authn.outcome, 'failed');
    assert.equal(rec.path, undefined, 'refused before the policy');
  });

  for (const [routeId, [method, path]] of Object.entries(ROUTES)) {
    it(`an analyst is denied ${routeId}: 403 with the policy's reason`, async () => {
      const res = await call(method, path, tokens.carol, method === 'POST' ? { text: 'analyst was here, great' } : undefined);
      const problem = assertPolicyDenied(res, [`none of the roles [analyst] may call ${routeId}`]);
      const rec = await decisionOf(problem);
      assertEvaluatedRecord(rec, routeId, 403, 'deny', 'carol');
      assert.equal(rec.custom.upstream_status, undefined, 'a denied request is not forwarded');
    });
  }

  it('the analyst\'s denied predict never reached the model API', async () => {
    const res = await call('GET', LOGS, tokens.bob);
    assert.equal(res.status, 200, res.text);
    const { entries } = res.json<{ entries: Rec[] }>();
    assert.ok(entries.some((e) => e.caller === 'alice'), 'the log has the allowed prediction');
    assert.ok(!entries.some((e) => e.caller === 'carol'), `no prediction by carol: ${JSON.stringify(entries)}`);
  });
});

describe('quickstart: metrics', () => {
  it('the admin /metrics counts the allowed predict and the denials', async () => {
    const res = await send(`${regate.adminUrl}/metrics`);
    assert.equal(res.status, 200);
    const exp = parseExposition(res.text);
    const count = (route: string, decision: string, statusClass: string): number =>
      sampleValue(exp, 'regate_requests_total', { route, decision, status_class: statusClass }) ?? 0;
    assert.ok(count('predict', 'allow', '2xx') >= 1, 'predict allow 2xx counted');
    assert.ok(count('metadata', 'allow', '2xx') >= 1, 'metadata allow 2xx counted');
    assert.ok(count('logs', 'allow', '2xx') >= 1, 'logs allow 2xx counted');
    assert.ok(count('logs', 'deny', '4xx') >= 2, 'logs denials counted (alice, carol)');
    assert.ok(count('predict', 'deny', '4xx') >= 1, 'predict denial counted (carol)');
  });
});
