/**
 * Lints regate's real /metrics output with client_golang's promlint (what
 * `promtool check metrics` runs), built from tools/promlint. Go is a hard
 * requirement of this test: without it the test fails, it is never skipped.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createAdminServer } from '../../../src/observe/admin.ts';
import { createMetrics } from '../../../src/observe/metrics.ts';
import { createObserver, type RequestOutcome } from '../../../src/observe/record.ts';
import { buildGoTool } from '../../helpers/go-tool.ts';
import { parseExposition, sampleValue } from '../../helpers/metrics.ts';

/** Built by buildGoTool (test/helpers/go-tool.ts) before the tests run. */
let binary = '';

/**
 * Problems in prom-client's default metrics, which keep their conventional
 * names (dashboards query them): these gauges end in `_total`. Any problem
 * not in this list — and every problem in a regate_* metric — fails.
 */
const KNOWN_DEFAULT_METRIC_PROBLEMS = new Set([
  'nodejs_active_handles_total: non-counter metrics should not have "_total" suffix',
  'nodejs_active_requests_total: non-counter metrics should not have "_total" suffix',
  'nodejs_active_resources_total: non-counter metrics should not have "_total" suffix',
]);

function lint(text: string): { status: number | null; problems: string[]; stderr: string } {
  const run = spawnSync(binary, [], { input: text, encoding: 'utf8' });
  if (run.error) throw run.error;
  return { status: run.status, problems: run.stdout.split('\n').filter((l) => l !== ''), stderr: run.stderr };
}

function outcome(over: Partial<RequestOutcome>): RequestOutcome {
  return {
    decisionId: 'd',
    startedAtNs: 0n,
    durationNs: 3_000_000,
    routeId: 'predict',
    entrypoint: 'regate/authz/decision',
    input: null,
    result: { allow: true },
    decision: 'allow',
    status: 200,
    reason: 'allowed',
    authn: { outcome: 'verified', issuer: 'kc' },
    scopes: [],
    evalNs: 30_000,
    upstreamNs: 2_000_000,
    upstreamStatus: 200,
    method: 'GET',
    path: '/x',
    ...over,
  };
}

describe('promlint on /metrics', { timeout: 300_000 }, () => {
  before(() => {
    binary = buildGoTool('promlint');
  });

  let url = '';
  const metrics = createMetrics({ routeIds: ['predict', 'files'], issuerIds: ['kc'], bundle: { name: 'regate', revision: 'r1' }, version: '0.1.0' });
  const server = createAdminServer({ registry: metrics.registry, ready: () => true });
  before(async () => {
    const observer = createObserver({ metrics, decisionLog: { write() {} } });
    observer.record(outcome({}));
    observer.record(outcome({ decision: 'deny', status: 403, reason: 'policy_denied', upstreamNs: undefined }));
    observer.record(outcome({ routeId: 'files', decision: 'deny', status: 401, reason: 'token_expired', authn: { outcome: 'failed', reason: 'token_expired' } }));
    observer.record(outcome({ routeId: null, decision: 'deny', status: 404, reason: 'route_not_found', authn: { outcome: 'skipped' } }));
    observer.record(outcome({ status: 504, reason: 'upstream_timeout' }));
    observer.record(outcome({ decision: 'error', status: 500, reason: 'policy_eval_error', upstreamNs: undefined }));
    metrics.jwksRefresh('kc', 'success');
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  });
  after(() => new Promise<void>((ok) => server.close(() => ok())));

  it('finds no problem in regate_* metrics and only the known ones in the defaults', async () => {
    const text = await (await fetch(url)).text();
    // Sanity: this is the real output after the recorded outcomes.
    const exp = parseExposition(text);
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: 'predict', decision: 'allow', status_class: '2xx' }), 1);
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: 'predict', decision: 'allow', status_class: '5xx' }), 1);
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: 'predict', decision: 'error', status_class: '5xx' }), 1);

    const { status, problems, stderr } = lint(text);
    assert.notEqual(status, 2, `promlint could not parse the exposition: ${stderr}`);
    assert.deepEqual(problems.filter((p) => p.startsWith('regate_')), [], 'regate metrics must lint clean');
    assert.deepEqual(problems.filter((p) => !KNOWN_DEFAULT_METRIC_PROBLEMS.has(p)), [], 'unexpected promlint problems');
  });

  it('passes with the known default-metric problems ignored', async () => {
    const text = await (await fetch(url)).text();
    const run = spawnSync(binary, ['-ignore', '^nodejs_active_(handles|requests|resources)_total: non-counter metrics should not have "_total" suffix$'], {
      input: text,
      encoding: 'utf8',
    });
    assert.equal(run.status, 0, run.stdout + run.stderr);
  });

  it('really lints: a badly named exposition fails with the problems listed', () => {
    const bad = [
      '# HELP bad_requests Requests.',
      '# TYPE bad_requests counter',
      'bad_requests 1',
      '# HELP bad_latency_milliseconds Latency.',
      '# TYPE bad_latency_milliseconds gauge',
      'bad_latency_milliseconds 3',
      '',
    ].join('\n');
    const { status, problems } = lint(bad);
    assert.equal(status, 1);
    assert.ok(problems.includes('bad_requests: counter metrics should have "_total" suffix'), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('bad_latency_milliseconds: use base unit')), problems.join('\n'));
  });

  it('exits 2 on input that is not exposition text', () => {
    assert.equal(lint('this is { not metrics\n').status, 2);
  });
});
