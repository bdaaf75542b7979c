import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { DecisionLogConfig } from '../../../src/config/types.ts';
import type { PolicyInput } from '../../../src/input/types.ts';
import { createDecisionLog, DECISION_LOG_TYPE, formatRfc3339Nano, type DecisionLogMeta } from '../../../src/observe/decision-log.ts';
import type { RequestOutcome } from '../../../src/observe/record.ts';
import { createLogSink, parseLog, readLogFile, type LogRecord } from '../../helpers/log-sink.ts';

const NOW_NS = 1_773_072_000_123_456_789n; // 2026-03-09T16:00:00.123456789Z
const JWT =
  'eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6MTc3MzA3MjAwMH0.MEUCIQDx3Zq1y4Yy8m0lY8q2b7i2cW0mQw6B6Jw1oN2X9d_-AiA';

function policyInput(headers: Record<string, string> = { accept: 'application/json' }, query: Record<string, string[]> = { v: ['1'] }): PolicyInput {
  return Object.freeze({
    request: {
      id: 'dec-1',
      method: 'POST',
      path: '/v1/models/sentiment/predict',
      params: { model: 'sentiment' },
      query,
      headers,
      host: 'api.example.com',
      remote_addr: '10.0.0.7',
    },
    route: { id: 'predict', attributes: { sensitivity: 'high' } },
    subject: { authenticated: true, sub: 'alice', iss: 'https://idp.example', roles: ['analyst'], groups: [], scopes: ['predict'], tenant: 't1' },
    token: { sub: 'alice', exp: 1773075600 },
    time: {
      now_ns: NOW_NS,
      rfc3339: '2026-03-09T16:00:00.123Z',
      timezone: 'UTC',
      local: { date: '2026-03-09', clock: '16:00:00', year: 2026, month: 3, day: 9, hour: 16, minute: 0, second: 0, weekday: 'Monday', offset: '+00:00' },
    },
  });
}

function outcome(over: Partial<RequestOutcome> = {}): RequestOutcome {
  return {
    decisionId: 'dec-1',
    startedAtNs: NOW_NS,
    durationNs: 2_500_000.4,
    routeId: 'predict',
    entrypoint: 'regate/authz/decision',
    input: policyInput(),
    result: { allow: true, reasons: [] },
    decision: 'allow',
    status: 200,
    reason: 'allowed',
    authn: { outcome: 'verified', issuer: 'idp' },
    scopes: ['predict'],
    evalNs: 41_000,
    upstreamNs: 1_800_000,
    upstreamStatus: 200,
    method: 'POST',
    path: '/v1/models/sentiment/predict',
    ...over,
  };
}

const config: DecisionLogConfig = { enabled: true, destination: 'stdout', mask: [], labels: { env: 'prod', id: 'ignored' }, max_buffer_bytes: 4 * 1024 * 1024, overload: 'block' };
const meta: DecisionLogMeta = { bundles: () => ({ regate: { revision: 'rev-7' } }), version: '0.1.0', instanceId: 'inst-1' };

function logOne(o: RequestOutcome, cfg: Partial<DecisionLogConfig> = {}, m: DecisionLogMeta = meta): { record: LogRecord; line: string } {
  const sink = createLogSink();
  createDecisionLog({ ...config, ...cfg }, m, { stream: sink.stream }).write(o);
  return { record: sink.only(), line: sink.lines[0]! };
}

describe('decision log record', () => {
  it('has the OPA event shape plus regate fields under custom', () => {
    const { record } = logOne(outcome());
    const { time, ...rest } = record;
    assert.match(String(time), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    assert.deepEqual(rest, {
      level: 'info',
      msg: 'Decision Log',
      type: DECISION_LOG_TYPE,
      decision_id: 'dec-1',
      timestamp: '2026-03-09T16:00:00.123456789Z',
      labels: { env: 'prod', id: 'inst-1', version: '0.1.0' },
      bundles: { regate: { revision: 'rev-7' } },
      path: 'regate/authz/decision',
      input: {
        request: {
          id: 'dec-1',
          method: 'POST',
          path: '/v1/models/sentiment/predict',
          params: { model: 'sentiment' },
          query: { v: ['1'] },
          headers: { accept: 'application/json' },
          host: 'api.example.com',
          remote_addr: '10.0.0.7',
        },
        route: { id: 'predict', attributes: { sensitivity: 'high' } },
        subject: { authenticated: true, sub: 'alice', iss: 'https://idp.example', roles: ['analyst'], groups: [], scopes: ['predict'], tenant: 't1' },
        token: { sub: 'alice', exp: 1773075600 },
        time: {
          now_ns: NOW_NS,
          rfc3339: '2026-03-09T16:00:00.123Z',
          timezone: 'UTC',
          local: { date: '2026-03-09', clock: '16:00:00', year: 2026, month: 3, day: 9, hour: 16, minute: 0, second: 0, weekday: 'Monday', offset: '+00:00' },
        },
      },
      result: { allow: true, reasons: [] },
      requested_by: '10.0.0.7',
      metrics: { timer_rego_query_eval_ns: 41000, timer_regate_request_ns: 2500000, timer_regate_upstream_ns: 1800000 },
      custom: {
        route_id: 'predict',
        http_method: 'POST',
        http_path: '/v1/models/sentiment/predict',
        http_status: 200,
        decision: 'allow',
        reason: 'allowed',
        authn: { outcome: 'verified', issuer: 'idp' },
        scopes: ['predict'],
        upstream_status: 200,
      },
    });
  });

  it('omits what did not happen for a request refused before routing', () => {
    const { record } = logOne(
      outcome({
        routeId: null,
        entrypoint: null,
        input: null,
        result: undefined,
        decision: 'deny',
        status: 400,
        reason: 'bad_request',
        authn: { outcome: 'skipped' },
        scopes: [],
        evalNs: undefined,
        upstreamNs: undefined,
        upstreamStatus: undefined,
        method: 'GET',
        path: '/a/%2e%2e/b',
        remoteAddr: '192.0.2.1',
      }),
    );
    for (const absent of ['path', 'input', 'result', 'erased', 'masked', 'error', 'pid', 'hostname', 'req_id']) assert.ok(!(absent in record), absent);
    assert.equal(record['requested_by'], '192.0.2.1');
    assert.deepEqual(record['metrics'], { timer_regate_request_ns: 2500000 });
    assert.deepEqual(record['custom'], {
      route_id: null,
      http_method: 'GET',
      http_path: '/a/%2e%2e/b',
      http_status: 400,
      decision: 'deny',
      reason: 'bad_request',
      authn: { outcome: 'skipped' },
      scopes: [],
    });
  });

  it('records an authentication failure with its reason', () => {
    const { record } = logOne(outcome({ decision: 'deny', status: 401, reason: 'token_expired', authn: { outcome: 'failed', reason: 'token_expired', issuer: 'idp' } }));
    assert.deepEqual((record['custom'] as Record<string, unknown>)['authn'], { outcome: 'failed', reason: 'token_expired', issuer: 'idp' });
  });

  it('writes time.now_ns (and any bigint in the result) as an exact JSON integer', () => {
    const { record, line } = logOne(outcome({ result: { allow: true, big: 2n ** 63n + 1n } }));
    assert.equal((record['input'] as PolicyInput).time.now_ns, NOW_NS);
    assert.equal((record['result'] as Record<string, unknown>)['big'], 9223372036854775809n);
    assert.ok(line.includes('"now_ns":1773072000123456789'), 'a JSON number, not a string');
  });

  it('omits bundles when none are loaded and reads them per record (reload)', () => {
    let revision = '';
    const sink = createLogSink();
    const log = createDecisionLog(config, { ...meta, bundles: (): Record<string, { revision: string }> => (revision ? { regate: { revision } } : {}) }, { stream: sink.stream });
    log.write(outcome());
    revision = 'rev-8';
    log.write(outcome());
    assert.ok(!('bundles' in sink.records[0]!));
    assert.deepEqual(sink.records[1]!['bundles'], { regate: { revision: 'rev-8' } });
  });
});

describe('decision log masking', () => {
  it('applies configured pointers and lists them in erased', () => {
    const { record } = logOne(outcome(), { mask: ['/input/token/exp', '/input/subject/roles/0', '/input/request/headers/nope', '/result/reasons'] });
    const input = record['input'] as { token: Record<string, unknown>; subject: { roles: string[] } };
    assert.deepEqual(input.token, { sub: 'alice' });
    assert.deepEqual(input.subject.roles, []);
    assert.deepEqual(record['result'], { allow: true });
    assert.deepEqual(record['erased'], ['/input/token/exp', '/input/subject/roles/0', '/result/reasons']);
    assert.ok(!('masked' in record));
  });

  it('never logs a token, even when the input carries one by mistake', () => {
    const headers = { authorization: `Bearer ${JWT}`, cookie: `session=${JWT}`, 'x-forwarded-access-token': JWT, accept: '*/*' };
    const { record, line } = logOne(
      outcome({ input: policyInput(headers, { access_token: [JWT] }), path: `/callback?id_token=${JWT}`, result: { allow: false } }),
    );
    assert.ok(!line.includes(JWT), 'raw token in the decision log');
    assert.ok(!line.includes(JWT.split('.')[2]!), 'token signature in the decision log');
    const request = (record['input'] as PolicyInput).request;
    assert.deepEqual(request.headers, { 'x-forwarded-access-token': '[REDACTED:jwt]', accept: '*/*' });
    assert.deepEqual(request.query, { access_token: ['[REDACTED:jwt]'] });
    assert.equal((record['custom'] as Record<string, unknown>)['http_path'], '/callback?id_token=[REDACTED:jwt]');
    assert.deepEqual(record['erased'], ['/input/request/headers/authorization', '/input/request/headers/cookie']);
    assert.deepEqual(record['masked'], ['/input/request/headers/x-forwarded-access-token', '/input/request/query/access_token/0', '/custom/http_path']);
  });

  it('redacts tokens in the path, path parameters, query keys and body too', () => {
    const input = policyInput({ accept: '*/*' }, { [JWT]: [''], q: ['x'] }) as unknown as { request: Record<string, unknown> };
    const request = { ...input.request, path: `/verify/${JWT}`, params: { t: JWT }, body: { grant: { subject_token: JWT, n: 1 }, list: [JWT] } };
    const { record, line } = logOne(outcome({ input: { ...input, request } as unknown as PolicyInput, path: `/verify/${JWT}` }));
    assert.ok(!line.includes(JWT.split('.')[2]!), 'token signature in the decision log');
    const logged = (record['input'] as { request: Record<string, any> }).request;
    assert.equal(logged.path, '/verify/[REDACTED:jwt]');
    assert.deepEqual(logged.params, { t: '[REDACTED:jwt]' });
    assert.deepEqual(logged.query, { '[REDACTED:jwt]': [''], q: ['x'] });
    assert.deepEqual(logged.body, { grant: { subject_token: '[REDACTED:jwt]', n: 1 }, list: ['[REDACTED:jwt]'] });
    assert.deepEqual(record['masked'], [
      '/input/request/path',
      '/input/request/params/t',
      '/input/request/query/[REDACTED:jwt]',
      '/input/request/body/grant/subject_token',
      '/input/request/body/list/0',
      '/custom/http_path',
    ]);
  });

  it('does not modify the outcome it was given', () => {
    const o = outcome({ input: policyInput({ authorization: 'Bearer x', accept: '*/*' }) });
    logOne(o, { mask: ['/input/token'] });
    assert.deepEqual(o.input?.request.headers, { authorization: 'Bearer x', accept: '*/*' });
    assert.deepEqual(o.input?.token, { sub: 'alice', exp: 1773075600 });
  });
});

describe('decision log destinations', () => {
  const dirs: string[] = [];
  after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it('is a no-op when disabled', async () => {
    const sink = createLogSink();
    const log = createDecisionLog({ ...config, enabled: false }, meta, { stream: sink.stream });
    assert.equal(log.enabled, false);
    log.write(outcome());
    log.flushSync();
    await log.close();
    assert.equal(sink.lines.length, 0);
  });

  it('writes one line per request to a file (directories created) and flushes on close', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regate-dlog-'));
    dirs.push(dir);
    const file = join(dir, 'nested/deeper/decisions.log');
    const errors: Error[] = [];
    const log = createDecisionLog({ ...config, destination: file }, meta, { onError: (e) => errors.push(e) });
    for (let i = 0; i < 100; i++) log.write(outcome({ decisionId: `d-${i}` }));
    await log.close();
    await log.close(); // idempotent
    const records = await readLogFile(file);
    assert.deepEqual(
      records.map((r) => r['decision_id']),
      Array.from({ length: 100 }, (_, i) => `d-${i}`),
    );
    assert.equal(errors.length, 0);

    log.write(outcome({ decisionId: 'late' })); // after close: reported, not thrown
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /late/);
  });

  it('writes to stdout and flushes it on close', () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const moduleUrl = pathToFileURL(resolve(here, '../../../src/observe/decision-log.ts')).href;
    const script = `
      const { createDecisionLog } = await import(${JSON.stringify(moduleUrl)});
      const log = createDecisionLog({ enabled: true, destination: 'stdout', mask: [], labels: {} },
        { bundles: () => ({}), version: 'v', instanceId: 'i' });
      for (let i = 0; i < 3; i++) log.write({ decisionId: 'c' + i, startedAtNs: 0n, durationNs: 1, routeId: null, entrypoint: null,
        input: null, result: undefined, decision: 'deny', status: 404, reason: 'route_not_found',
        authn: { outcome: 'skipped' }, scopes: [], method: 'GET', path: '/' });
      await log.close();
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const records = parseLog(run.stdout);
    assert.deepEqual(
      records.map((r) => [r['decision_id'], r['timestamp']]),
      [
        ['c0', '1970-01-01T00:00:00Z'],
        ['c1', '1970-01-01T00:00:00Z'],
        ['c2', '1970-01-01T00:00:00Z'],
      ],
    );
  });
});

describe('formatRfc3339Nano', () => {
  it('formats like Go time.RFC3339Nano (trailing zeros trimmed)', () => {
    assert.equal(formatRfc3339Nano(NOW_NS), '2026-03-09T16:00:00.123456789Z');
    assert.equal(formatRfc3339Nano(1_773_072_000_120_000_000n), '2026-03-09T16:00:00.12Z');
    assert.equal(formatRfc3339Nano(1_773_072_000_000_000_000n), '2026-03-09T16:00:00Z');
    assert.equal(formatRfc3339Nano(1_773_072_000_000_000_001n), '2026-03-09T16:00:00.000000001Z');
    assert.equal(formatRfc3339Nano(-1n), '1969-12-31T23:59:59.999999999Z');
  });
});
