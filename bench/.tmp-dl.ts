import { buildDecisionEvent, createDecisionLog, createEventContext } from '../src/observe/decision-log.ts';
import { pino } from 'pino';
const input = {
  request: { id: '8d3c7a4e-1f2b-4c5d-9e6f-7a8b9c0d1e2f', method: 'POST', path: '/v1/models/sentiment/predict', params: { model: 'sentiment' }, query: {}, headers: { host: '127.0.0.1:8080', 'content-type': 'application/json', 'user-agent': 'regate-bench/1', 'content-length': '40' }, host: '127.0.0.1', remote_addr: '127.0.0.1' },
  route: { id: 'predict', attributes: { sensitivity: 'low' } },
  subject: { authenticated: true, sub: 'user-7', iss: 'https://issuer.quickstart.regate.dev', roles: ['data_scientist'], groups: [], scopes: [], tenant: '' },
  token: { iss: 'https://issuer.quickstart.regate.dev', aud: 'sentiment-api', sub: 'user-7', jti: '6f1c1d7e-8a5b-4b53-9d0e-1f3f0b8a2c11', iat: 1700000000, exp: 1700007200, realm_access: { roles: ['data_scientist'] }, email: 'user-7@example.com' },
  time: { now_ns: 1763920000123456789n, rfc3339: '2025-11-23T17:00:00.123Z', timezone: 'America/Los_Angeles', local: { date: '2025-11-23', clock: '09:00:00', year: 2025, month: 11, day: 23, hour: 9, minute: 0, second: 0, weekday: 'Sunday', offset: '-08:00' } },
};
const o: any = { decisionId: input.request.id, startedAtNs: 1763920000123456789n, durationNs: 812345, routeId: 'predict', entrypoint: 'regate/authz/decision', input, result: { allow: true, reasons: ['role data_scientist may call predict'] }, decision: 'allow', status: 200, reason: 'allowed', authn: { outcome: 'verified', issuer: 'quickstart' }, scopes: [], evalNs: 17000, upstreamNs: 400000, upstreamStatus: 200, method: 'POST', path: '/v1/models/sentiment/predict', remoteAddr: '127.0.0.1' };
const cfg: any = { enabled: true, destination: 'stdout', mask: [], labels: { env: 'quickstart' } };
const meta = { bundles: () => ({ regate: { revision: 'r1' } }), version: '0.1.0', instanceId: 'regate-1-x' };
const ctx = createEventContext(cfg, meta);
let bytes = 0;
const dl = createDecisionLog(cfg, meta, { stream: { write(s: string) { bytes += s.length; } } as any });
const logger = pino({ base: null, messageKey: 'msg', timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (l) => ({ level: l }) } }, { write(s: string) { bytes += s.length; } } as any);
const N = 100000;
const bench = (name: string, f: () => void) => { for (let i = 0; i < 20000; i++) f(); const t = process.hrtime.bigint(); for (let i = 0; i < N; i++) f(); console.log(name.padEnd(30), (Number(process.hrtime.bigint() - t) / N / 1000).toFixed(2), 'µs'); };
const ev = buildDecisionEvent(o, ctx);
bench('buildDecisionEvent', () => buildDecisionEvent(o, ctx));
bench('pino info(prebuilt event)', () => logger.info(ev, 'Decision Log'));
bench('JSON.stringify(event)', () => JSON.stringify(ev));
bench('decisionLog.write (all)', () => dl.write(o));
console.log('line bytes', JSON.stringify(ev).length);
for (const k of Object.keys(ev)) bench('  stringify ' + k, () => JSON.stringify((ev as any)[k]));
const inp = (ev as any).input;
for (const k of Object.keys(inp)) bench('    input.' + k, () => JSON.stringify(inp[k]));
console.log(Object.keys(ev));
