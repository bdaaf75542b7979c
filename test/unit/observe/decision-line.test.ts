/**
 * The decision-log line is built directly (not by pino's logger, which cost a
 * third of every record): it must stay byte-for-byte what pino wrote.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { TimeInputBuilder } from '../../../src/input/time.ts';
import { buildDecisionEvent, createEventContext, DECISION_LOG_MESSAGE, decisionLine, decisionRecordLine, type DecisionEvent } from '../../../src/observe/decision-log.ts';
import type { RequestOutcome } from '../../../src/observe/record.ts';
import { cloneForLog } from '../../../src/observe/mask.ts';
import { rememberJson, stringifyJson } from '../../../src/policy/precise-json.ts';

const event = (): DecisionEvent => ({
  type: 'openpolicyagent.org/decision_logs',
  decision_id: '8d3c7a4e-1f2b-4c5d-9e6f-7a8b9c0d1e2f',
  timestamp: '2026-03-09T16:00:00.123456789Z',
  labels: { id: 'regate-1', version: '0.1.0', env: 'prod "eu"' },
  bundles: { regate: { revision: 'r1' } },
  path: 'regate/authz/decision',
  input: cloneForLog({ request: { headers: { 'x-note': 'line\nbreak \u2028 é' } }, time: new TimeInputBuilder('UTC').build(1_773_072_000_123_456_789n) }),
  result: { allow: true, reasons: [] },
  requested_by: '10.0.0.7',
  metrics: { timer_rego_query_eval_ns: 41000 },
  custom: { route_id: 'predict', http_method: 'POST', http_path: '/p', http_status: 200, decision: 'allow', reason: 'allowed', authn: { outcome: 'verified', issuer: 'kc' }, scopes: [] },
});

/** What pino wrote for the same record, as regate configured it before. */
function pinoLine(e: DecisionEvent): string {
  let line = '';
  const logger = pino(
    { base: null, messageKey: 'msg', timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
    { write: (s: string) => (line = s) },
  );
  logger.info(e, DECISION_LOG_MESSAGE);
  return line;
}

const withoutTime = (line: string): string => line.replace(/"time":"[^"]+"/, '"time":"T"');

describe('decisionLine', () => {
  it('is exactly the line pino wrote: level, time, the event, msg, newline', () => {
    const e = event();
    const ours = decisionLine(e);
    assert.equal(withoutTime(ours), withoutTime(pinoLine(e)));
    assert.ok(ours.endsWith('}\n'));
    assert.match(ours, /^\{"level":"info","time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","type":/);
  });

  it('keeps input.time.now_ns exact (19 digits) through the clone', () => {
    const line = decisionLine(event());
    assert.ok(line.includes('"now_ns":1773072000123456789'), line);
    assert.equal(line.split('\n').length, 2, 'one line: newlines in values are escaped');
  });
});

describe('cloneForLog', () => {
  it('builds plain objects (fast to fill and to serialize), keeping an own __proto__ key', () => {
    const copy = cloneForLog(JSON.parse('{"a":{"b":1},"__proto__":{"x":1}}')) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(copy), Object.prototype);
    assert.equal(Object.getPrototypeOf(copy.a), Object.prototype);
    assert.ok(Object.hasOwn(copy, '__proto__'));
    assert.equal(({} as Record<string, unknown>).x, undefined, 'no prototype pollution');
  });
});

describe('decisionRecordLine', () => {
  const ctx = createEventContext({ enabled: true, destination: 'stdout', mask: [], labels: {} }, { bundles: () => ({}), version: '1', instanceId: 'i' });
  const outcome = (input: Record<string, unknown>): RequestOutcome => ({
    decisionId: 'd',
    startedAtNs: 1_773_072_000_123_456_789n,
    durationNs: 1000,
    routeId: 'r',
    entrypoint: 'e',
    input: input as unknown as RequestOutcome['input'],
    result: { allow: true },
    decision: 'allow',
    status: 200,
    reason: 'allowed',
    authn: { outcome: 'skipped' },
    scopes: [],
    method: 'GET',
    path: '/',
  });
  const time = new TimeInputBuilder('UTC').build(1_773_072_000_123_456_789n);

  it('prints the same record whether it shares the values or copies them', () => {
    const o = outcome({ request: { headers: { accept: 'x' }, query: { q: ['1'] } }, time });
    const shared = decisionRecordLine(o, ctx);
    assert.equal(withoutTime(shared), withoutTime(decisionLine(buildDecisionEvent(o, ctx))));
    assert.ok(shared.includes('"now_ns":1773072000123456789'));
  });

  it('splices in the text the policy engine printed for the same input, identical to serializing it', () => {
    for (const input of [
      { request: { headers: { accept: 'x' }, query: {} }, time },
      { request: { headers: {}, body: { id: 2n ** 64n } }, time },
    ]) {
      const o = outcome(input);
      rememberJson(input, stringifyJson(input)!);
      assert.equal(withoutTime(decisionRecordLine(o, ctx)), withoutTime(decisionLine(buildDecisionEvent(o, ctx))));
    }
  });

  it('falls back to the exact copying path for a bigint JSON.stringify cannot print', () => {
    const line = decisionRecordLine(outcome({ request: { body: { id: 2n ** 64n } }, time }), ctx);
    assert.ok(line.includes('"id":18446744073709551616'), line);
  });

  it('still redacts: a token in a header forces the copying path', () => {
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl';
    const line = decisionRecordLine(outcome({ request: { headers: { 'x-forwarded-token': `Bearer ${jwt}` } }, time }), ctx);
    assert.ok(!line.includes(jwt));
    assert.match(line, /"masked":\["\/input\/request\/headers\/x-forwarded-token"\]/);
  });
});
