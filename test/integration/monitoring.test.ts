/**
 * The shipped alerts (deploy/prometheus/regate-alerts.yml = the chart's PrometheusRule)
 * and Grafana dashboard (deploy/grafana/regate-dashboard.json) against a real Prometheus
 * (Debian's `prometheus`, installed by .ci/run) scraping a real regate process on loopback:
 *
 * - `promtool check rules` and `promtool test rules` (every alert, firing and not firing);
 * - regate serves allowed, denied and upstream-down requests and refuses a reload; then
 *   every dashboard query and every alert expression is evaluated through Prometheus'
 *   HTTP API and must succeed with the value this traffic implies, and every rule
 *   Prometheus itself evaluates reports health "ok";
 * - Prometheus negotiates OpenMetrics, so its successful scrape is also a parse of
 *   regate's OpenMetrics exposition by Prometheus' own parser.
 *
 * Bounded: scrape and rule evaluation every second, every wait a bounded poll.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { closedPort, send } from '../helpers/http.ts';
import { buildBundle } from '../helpers/opa.ts';
import { repoRoot, startRegate, type RegateProcess } from '../helpers/regate-process.ts';
import { baseClaims, generateTestKey, jwksOf, signToken, TEST_ISSUER } from '../helpers/tokens.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

const RULES = join(repoRoot, 'deploy/prometheus/regate-alerts.yml');
const RULE_TESTS = join(repoRoot, 'deploy/prometheus/regate-alerts.test.yml');
const DASHBOARD = join(repoRoot, 'deploy/grafana/regate-dashboard.json');

const POLICY = `
package mon

default decision := {"allow": false}

decision := {"allow": true} if input.request.headers["x-allow"] == "yes"
`;

function need(tool: string): string {
  const r = spawnSync(tool, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`${tool} is required (Debian: apt-get install prometheus; .ci/run installs it)`);
  return tool;
}

interface PromResult {
  readonly metric: Record<string, string>;
  readonly value: number;
}

/** Poll `check` every 100 ms until it returns a value, at most `timeoutMs`. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('alerts and dashboard against a real Prometheus and a real regate', { timeout: 180_000 }, () => {
  let promtool = '';
  let upstream: TestUpstream;
  let regate: RegateProcess;
  let prometheus: ChildProcess | undefined;
  let promUrl = '';
  let configFile = '';
  let goodConfig: Record<string, unknown> = {};
  let token = '';
  const promLog: string[] = [];

  /** An instant query; throws on a Prometheus error (a broken expression). */
  const query = async (expr: string): Promise<PromResult[]> => {
    const res = await send(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = res.json<{ status: string; error?: string; data?: { resultType: string; result: unknown } }>();
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
    const { resultType, result } = body.data!;
    if (resultType === 'scalar') return [{ metric: {}, value: Number((result as [number, string])[1]) }];
    assert.equal(resultType, 'vector', expr);
    return (result as { metric: Record<string, string>; value: [number, string] }[]).map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };
  const scalar = async (expr: string): Promise<number | undefined> => (await query(expr))[0]?.value;

  before(async () => {
    promtool = need('promtool');
    need('prometheus');
    upstream = await startUpstreamServer();
    const key = await generateTestKey('ES256');
    const dir = mkdtempSync(join(tmpdir(), 'regate-monitoring-'));
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwksOf(key)));
    token = await signToken(key, baseClaims({ aud: 'regate' }));
    const bundle = await buildBundle({ files: { 'mon.rego': POLICY }, entrypoints: ['mon/decision'], args: ['--revision', 'mon-1'] });
    const route = (id: string, path: string, to: string): Record<string, unknown> => ({ id, match: { methods: ['GET'], path }, upstream: to });
    goodConfig = {
      listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      upstreams: { app: { url: upstream.url }, down: { url: `http://127.0.0.1:${await closedPort()}` } },
      issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_file: join(dir, 'jwks.json'), audiences: ['regate'], algorithms: ['ES256'] }],
      policy: { bundle, default_entrypoint: 'mon/decision' },
      reload: { debounce_ms: 50 },
      decision_log: { destination: 'stdout' },
      routes: [route('read', '/read', 'app'), route('gone', '/gone', 'down')],
    };
    configFile = join(dir, 'regate.yaml');
    writeFileSync(configFile, stringify(goodConfig));
    regate = await startRegate(configFile);

    const admin = new URL(regate.adminUrl);
    const port = await closedPort();
    promUrl = `http://127.0.0.1:${port}`;
    const promConfig = join(dir, 'prometheus.yml');
    writeFileSync(
      promConfig,
      stringify({
        global: { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '900ms' },
        rule_files: [RULES],
        scrape_configs: [{ job_name: 'regate', metrics_path: '/metrics', static_configs: [{ targets: [admin.host] }] }],
      }),
    );
    prometheus = spawn('prometheus', [`--config.file=${promConfig}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    prometheus.stderr!.on('data', (d: Buffer) => promLog.push(d.toString()));
    await waitFor('Prometheus ready', async () => ((await send(`${promUrl}/-/ready`)).status === 200 ? true : undefined));
    await waitFor('the regate target up', async () => ((await scalar('up{job="regate"}')) === 1 ? true : undefined));
  });

  after(async () => {
    if (prometheus && prometheus.exitCode === null) {
      const exited = new Promise((r) => prometheus!.once('exit', r));
      prometheus.kill('SIGTERM');
      const t = setTimeout(() => prometheus!.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    await regate?.stop();
    await upstream?.close();
  });

  it('promtool: the rule file is valid and every alert passes its unit tests (firing and not firing)', () => {
    const check = spawnSync(promtool, ['check', 'rules', RULES], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const alerts = [...readFileSync(RULES, 'utf8').matchAll(/^\s+- alert: (\w+)$/gm)].map((m) => m[1]!);
    assert.ok(alerts.length >= 8);
    const tests = readFileSync(RULE_TESTS, 'utf8');
    for (const a of alerts) assert.match(tests, new RegExp(`alertname: ${a}\\b`), `${a} has a promtool test`);
    const run = spawnSync(promtool, ['test', 'rules', RULE_TESTS], { encoding: 'utf8', cwd: join(repoRoot, 'deploy/prometheus') });
    assert.equal(run.status, 0, run.stdout + run.stderr);
  });

  it('after allowed, denied, upstream-down traffic and a refused reload, every dashboard query and alert expression gives the expected value', async () => {
    const auth = { authorization: `Bearer ${token}` };
    for (let i = 0; i < 10; i++) assert.equal((await send(`${regate.proxyUrl}/read`, { headers: { ...auth, 'x-allow': 'yes' } })).status, 200);
    for (let i = 0; i < 5; i++) assert.equal((await send(`${regate.proxyUrl}/read`, { headers: auth })).status, 403);
    for (let i = 0; i < 3; i++) assert.equal((await send(`${regate.proxyUrl}/gone`, { headers: { ...auth, 'x-allow': 'yes' } })).status, 502);
    // A reload refused: an unknown key; the last good version keeps serving.
    writeFileSync(configFile, stringify({ ...goodConfig, bogus_key: 1 }));
    await waitFor('the refused reload scraped', async () => ((await scalar('regate_config_reload_success{job="regate"}')) === 0 ? true : undefined));
    await waitFor('all 18 requests scraped', async () => ((await scalar('sum(regate_requests_total{job="regate"})')) === 18 ? true : undefined));
    // Two more scrapes after the last change, so every rate() window has the final values.
    const t0 = await scalar('timestamp(up{job="regate"})');
    await waitFor('two more scrapes', async () => ((await scalar('timestamp(up{job="regate"})'))! >= t0! + 2 ? true : undefined));
    assert.equal(await scalar('sum(regate_requests_total{job="regate",route="read",decision="allow"})'), 10);
    assert.equal(await scalar('sum(regate_requests_total{job="regate",route="read",decision="deny"})'), 5);
    assert.equal(await scalar('sum(regate_forward_failures_total{job="regate",route="gone",reason="upstream_unavailable"})'), 3);

    // ------------------------------------------------------------ dashboard
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { title: string; targets: { refId: string; expr: string }[] }[] };
    // Grafana's variables, as Grafana would substitute them for this Prometheus.
    const grafana = (expr: string): string => expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', '.+');
    const positive = (rs: PromResult[]): Record<string, number> => Object.fromEntries(rs.filter((r) => r.value > 0).map((r) => [JSON.stringify(r.metric), r.value]));
    const key = (m: Record<string, string>): string => JSON.stringify(m);
    const expectations: Record<string, (refId: string, rs: PromResult[]) => void> = {
      'Requests by route and decision': (_, rs) => {
        assert.deepEqual(Object.keys(positive(rs)).sort(), [key({ decision: 'allow', route: 'gone' }), key({ decision: 'allow', route: 'read' }), key({ decision: 'deny', route: 'read' })].sort());
      },
      'Denials by reason': (_, rs) => assert.deepEqual(Object.keys(positive(rs)), [key({ reason: 'policy_denied' })]),
      'Request latency p50 / p99': (_, rs) => {
        assert.equal(rs.length, 1);
        assert.ok(rs[0]!.value > 0 && rs[0]!.value < 60, String(rs[0]!.value));
      },
      'Decision latency p50 / p99': (_, rs) => {
        assert.equal(rs.length, 1);
        assert.ok(rs[0]!.value > 0 && rs[0]!.value <= 0.05, String(rs[0]!.value));
      },
      'Upstream errors by route and reason': (_, rs) => assert.deepEqual(Object.keys(positive(rs)), [key({ reason: 'upstream_unavailable', route: 'gone' })]),
      // 18 authenticated requests with one token: 1 verification, 17 cache hits (rates share one extrapolation).
      'Token cache hit ratio': (_, rs) => {
        assert.equal(rs.length, 1);
        assert.ok(Math.abs(rs[0]!.value - 17 / 18) < 1e-9, String(rs[0]!.value));
      },
      // A file bundle is checked every 5 s: fresh, although it was activated once at startup.
      'Policy bundle: seconds since the last successful check': (_, rs) => {
        assert.equal(rs.length, 1);
        assert.ok(rs[0]!.value >= 0 && rs[0]!.value < 30, String(rs[0]!.value));
      },
      'Policy bundle revision': (_, rs) => assert.deepEqual(rs.map((r) => r.metric.revision), ['mon-1']),
      // jwks_file: nothing is fetched; the issuer's series exist at 0.
      'JWKS refreshes by issuer and result': (_, rs) => {
        assert.ok(rs.length >= 3);
        assert.deepEqual(positive(rs), {});
      },
      'Reload failures': (refId, rs) => {
        if (refId === 'A') assert.deepEqual(Object.keys(positive(rs)), [key({ trigger: 'file' })]);
        else assert.deepEqual(rs.map((r) => r.value), [0]);
      },
      // No shadow route: no traffic, so no ratio at all (0/0 guarded), not NaN.
      'Shadow disagreement ratio': (_, rs) => assert.deepEqual(rs, []),
      // regate_decision_log_dropped_total may not exist yet: `or vector(0)` still answers 0.
      'Decision-log losses': (_, rs) => assert.deepEqual(rs.map((r) => r.value), [0]),
    };
    assert.deepEqual(dashboard.panels.map((p) => p.title).sort(), Object.keys(expectations).sort(), 'every panel has an expectation');
    for (const panel of dashboard.panels) {
      for (const target of panel.targets) {
        const rs = await query(grafana(target.expr));
        for (const r of rs) assert.ok(!Number.isNaN(r.value), `${panel.title} ${target.refId}: NaN in ${JSON.stringify(r)}`);
        try {
          expectations[panel.title]!(target.refId, rs);
        } catch (err) {
          throw new Error(`panel "${panel.title}" ${target.refId} (${target.expr}) gave ${JSON.stringify(rs)}: ${(err as Error).message}`);
        }
      }
    }

    // ------------------------------------------------------------ alerts
    const rules = (await import('yaml')).parse(readFileSync(RULES, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const firing: Record<string, (rs: PromResult[]) => void> = {
      RegateReloadRefused: (rs) => assert.deepEqual(rs.map((r) => [r.metric.job, r.value]), [['regate', 0]]),
      RegateBundleStale: (rs) => assert.deepEqual(rs, []),
      RegateBundleRefused: (rs) => assert.deepEqual(rs, []),
      RegateErrorRatioHigh: (rs) => assert.deepEqual(rs, []),
      RegateUpstreamErrorRatioHigh: (rs) => assert.deepEqual(rs.map((r) => [r.metric.route, r.value]), [['gone', 1]]),
      RegatePolicyErrors: (rs) => assert.deepEqual(rs, []),
      RegateJwksRefreshFailing: (rs) => assert.deepEqual(rs, []),
      RegateDecisionLogLoss: (rs) => assert.deepEqual(rs, []),
      RegateShadowDisagreement: (rs) => assert.deepEqual(rs, []),
      // p99 of 18 evaluations: microseconds, but the first (cold) evaluation on a loaded machine may land in a
      // millisecond bucket; the expression must then agree with the histogram itself.
      RegateDecisionLatencyHigh: (rs) => {
        for (const r of rs) assert.ok(r.value > 0.005);
      },
    };
    const all = rules.groups.flatMap((g) => g.rules);
    assert.deepEqual(all.map((r) => r.alert).sort(), Object.keys(firing).sort(), 'every alert has an expectation');
    for (const rule of all) {
      const rs = await query(rule.expr);
      try {
        firing[rule.alert]!(rs);
      } catch (err) {
        throw new Error(`alert ${rule.alert} (${rule.expr}) gave ${JSON.stringify(rs)}: ${(err as Error).message}`);
      }
    }
    // Prometheus evaluates the rule file itself every second: no rule may report an error.
    const loaded = (await send(`${promUrl}/api/v1/rules`)).json<{ data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] } }>();
    const evaluated = loaded.data.groups.flatMap((g) => g.rules);
    assert.equal(evaluated.length, all.length);
    for (const r of evaluated) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
  });

  it("Prometheus scraped regate's OpenMetrics exposition (its own parser) without errors", async () => {
    const targets = (await send(`${promUrl}/api/v1/targets`)).json<{ data: { activeTargets: { health: string; lastError: string; scrapeUrl: string }[] } }>();
    const t = targets.data.activeTargets;
    assert.equal(t.length, 1);
    assert.equal(t[0]!.health, 'up', t[0]!.lastError);
    assert.equal(t[0]!.lastError, '');
    // What Prometheus asked for is what regate answered with.
    const res = await send(`${regate.adminUrl}/metrics`, { headers: { accept: 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1' } });
    assert.match(String(res.headers['content-type']), /^application\/openmetrics-text; version=1\.0\.0/);
    // Counter samples keep their _total names through Prometheus' OpenMetrics parser.
    assert.equal(await scalar('count(regate_requests_total{job="regate"}) > 0'), await scalar('count(regate_requests_total{job="regate"})'));
    assert.equal(await scalar('count(regate_requests{job="regate"})'), undefined);
  });
});
