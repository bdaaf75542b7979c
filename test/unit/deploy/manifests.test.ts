/**
 * The Helm chart (deploy/helm/regate) and the plain manifests (deploy/kubernetes/):
 * `helm lint --strict` and `helm template` for each values case in the chart's ci/
 * directory, every rendered object decoded strictly into the real Kubernetes and
 * prometheus-operator API types by tools/k8scheck (unknown or misplaced fields, wrong
 * types and dangling references fail), the rendered regate.yaml validated by regate's
 * own config loader, and what the issue found wrong asserted fixed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { parseAllDocuments, parse } from 'yaml';
import { loadConfig } from '../../../src/config/load.ts';
import { buildGoTool } from '../../helpers/go-tool.ts';
import { repoRoot } from '../../helpers/regate-process.ts';

const chart = join(repoRoot, 'deploy/helm/regate');
/** Objects that exist outside what the minimal case renders (it points at them). */
const EXTERNAL = ['ConfigMap/my-regate-config', 'ConfigMap/my-policy-bundle', 'Secret/bundle-signing-key'];
const KUBE_VERSION = '1.34.0';

function helmBinary(): string {
  const local = join(repoRoot, '.tools/bin/helm');
  if (existsSync(local)) return local;
  if (spawnSync('helm', ['version'], { encoding: 'utf8' }).status === 0) return 'helm';
  throw new Error('helm is required: scripts/install-tools.sh builds it into .tools/bin (go install helm.sh/helm/v3/cmd/helm@v3.22.0)');
}

type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [k: string]: unknown };

function run(cmd: string, args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function objects(yamlText: string): K8sObject[] {
  return parseAllDocuments(yamlText)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

describe('Kubernetes manifests (helm chart and deploy/kubernetes)', { timeout: 900_000 }, () => {
  let helm = '';
  let k8scheck = '';
  const rendered = new Map<string, { text: string; objects: K8sObject[] }>();
  const cases = readdirSync(join(chart, 'ci')).filter((f) => f.endsWith('-values.yaml'));

  const check = (file: string, extra: string[] = []): { status: number | null; stdout: string; stderr: string } => run(k8scheck, [...EXTERNAL.flatMap((e) => ['-external', e]), ...extra, file]);

  before(() => {
    helm = helmBinary();
    k8scheck = buildGoTool('k8scheck');
    for (const file of cases) {
      const r = run(helm, ['template', 'rel', chart, '-f', join(chart, 'ci', file), '--kube-version', KUBE_VERSION, '--namespace', 'ml']);
      assert.equal(r.status, 0, `helm template -f ${file}: ${r.stderr}`);
      rendered.set(file, { text: r.stdout, objects: objects(r.stdout) });
    }
  });

  it('has the values cases the CI renders', () => {
    assert.deepEqual(cases.sort(), ['minimal-values.yaml', 'sidecar-values.yaml', 'standalone-values.yaml']);
  });

  for (const file of ['minimal-values.yaml', 'sidecar-values.yaml', 'standalone-values.yaml']) {
    it(`helm lint --strict, and every object of the ${file} render decodes strictly`, () => {
      const lint = run(helm, ['lint', '--strict', chart, '-f', join(chart, 'ci', file), '--kube-version', KUBE_VERSION]);
      assert.equal(lint.status, 0, lint.stdout + lint.stderr);
      const dir = mkdtempSync(join(tmpdir(), 'regate-helm-'));
      const out = join(dir, 'rendered.yaml');
      writeFileSync(out, rendered.get(file)!.text);
      const r = check(out);
      assert.equal(r.status, 0, r.stdout + r.stderr);
    });
  }

  it('k8scheck fails on what a typo or a wrong field produces (it is not a rubber stamp)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'regate-k8scheck-'));
    const base = readFileSync(join(repoRoot, 'deploy/kubernetes/sidecar.yaml'), 'utf8');
    const mutations: [string, string, RegExp][] = [
      ['misspelt field', base.replace('readOnlyRootFilesystem: true', 'readOnlyRootFileSystem: true'), /unknown field "spec.template.spec.containers\[1\].securityContext.readOnlyRootFileSystem"/],
      ['wrong type', base.replace('replicas: 2', 'replicas: "2"'), /replicas/],
      ['wrong case', base.replace('containerPort: 8080', 'ContainerPort: 8080'), /unknown field/],
      ['dangling ConfigMap', base.replace('configMap: { name: sentiment-regate }', 'configMap: { name: sentiment-policy-bundle }'), /ConfigMap "sentiment-policy-bundle", which is not defined/],
      ['probe on a port that is not there', base.replace('httpGet: { path: /healthz, port: admin }', 'httpGet: { path: /healthz, port: metrics }'), /livenessProbe port "metrics"/],
      ['PodMonitor on a missing port', base.replace('    - port: admin\n      path: /metrics', '    - port: prom\n      path: /metrics'), /podMetricsEndpoints\[0\].port "prom"/],
      ['duplicate key', base.replace('  replicas: 2\n', '  replicas: 2\n  replicas: 3\n'), /duplicate|already set|mapping key/i],
      ['unknown kind', `${base}\n---\napiVersion: apps/v1\nkind: Deploymnet\nmetadata: { name: x }\n`, /unknown apiVersion\/kind/],
      ['PrometheusRule with a misplaced key', `${base}\n---\napiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: { name: r }\nspec:\n  groups:\n    - name: g\n      rules:\n        - alert: A\n          expression: up == 0\n`, /unknown field "spec.groups\[0\].rules\[0\].expression"/],
    ];
    for (const [what, text, want] of mutations) {
      assert.notEqual(text, base, `${what}: the mutation applies`);
      const file = join(dir, `${what.replace(/\W+/g, '-')}.yaml`);
      writeFileSync(file, text);
      const r = check(file);
      assert.equal(r.status, 1, `${what}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, want, what);
    }
  });

  it('deploy/kubernetes/sidecar.yaml decodes strictly and its regate.yaml is a valid config', async () => {
    const file = join(repoRoot, 'deploy/kubernetes/sidecar.yaml');
    const r = run(k8scheck, [file]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const objs = objects(readFileSync(file, 'utf8'));
    await assertValidRegateConfig(objs, {});
    assertSidecarFixes(objs, 'model');
  });

  it('sidecar render: drain + preStop, per-container non-root, no service-account token, labelled monitors, valid regate.yaml', async () => {
    const objs = rendered.get('sidecar-values.yaml')!.objects;
    await assertValidRegateConfig(objs, { BUNDLE_TOKEN: 't' });
    assertSidecarFixes(objs, 'model');
    const monitor = objs.find((o) => o.kind === 'PodMonitor')!;
    assert.equal(monitor.metadata.labels?.release, 'kube-prometheus-stack');
    assert.ok(!objs.some((o) => o.kind === 'PodDisruptionBudget'), 'a sidecar has no PDB of its own');
    // The PrometheusRule is exactly the plain rule file.
    const rule = objs.find((o) => o.kind === 'PrometheusRule') as unknown as { spec: unknown };
    assert.deepEqual(rule.spec, parse(readFileSync(join(repoRoot, 'deploy/prometheus/regate-alerts.yml'), 'utf8')));
    const dashboard = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'rel-regate-dashboard') as unknown as { data: Record<string, string> };
    assert.deepEqual(JSON.parse(dashboard.data['regate-dashboard.json']!), JSON.parse(readFileSync(join(repoRoot, 'deploy/grafana/regate-dashboard.json'), 'utf8')));
  });

  it('standalone render: PDB, ServiceMonitor on a headless admin Service, bundle ConfigMap with binaryData, signing key mounted', async () => {
    const objs = rendered.get('standalone-values.yaml')!.objects;
    await assertValidRegateConfig(objs, {}, { checkFiles: false });
    assert.ok(objs.some((o) => o.kind === 'PodDisruptionBudget'));
    const sm = objs.find((o) => o.kind === 'ServiceMonitor')!;
    assert.equal(sm.metadata.labels?.release, 'kube-prometheus-stack');
    const admin = objs.find((o) => o.kind === 'Service' && o.metadata.name === 'rel-regate-admin') as unknown as { spec: { clusterIP: string } };
    assert.equal(admin.spec.clusterIP, 'None');
    const bundle = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'rel-regate-bundle') as unknown as { binaryData: Record<string, string> };
    assert.ok(bundle.binaryData['bundle.tar.gz']!.length > 0);
    const dep = deployment(objs);
    assert.deepEqual(dep.spec.template.spec.containers.map((c) => c.name), ['regate'], 'standalone: regate alone');
    assert.ok(dep.spec.template.spec.volumes.some((v) => (v as { secret?: { secretName: string } }).secret?.secretName === 'bundle-signing-key'));
  });

  it('minimal render: monitoring and NetworkPolicy off render none, the image is pinned by digest', () => {
    const objs = rendered.get('minimal-values.yaml')!.objects;
    assert.deepEqual(objs.map((o) => o.kind).sort(), ['Deployment', 'Service']);
    const dep = deployment(objs);
    assert.match(dep.spec.template.spec.containers[0]!.image, /^ghcr\.io\/regate\/regate@sha256:0{64}$/);
  });

  it('the chart README documents every value, and only values that exist', () => {
    const values = parse(readFileSync(join(chart, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    const readme = readFileSync(join(chart, 'README.md'), 'utf8');
    const documented = [...readme.matchAll(/^\| `([\w.]+)` \|/gm)].map((m) => m[1]!);
    const resolve = (path: string): unknown => path.split('.').reduce<unknown>((node, k) => (node as Record<string, unknown> | undefined)?.[k], values);
    for (const key of documented) assert.notEqual(resolve(key), undefined, `README documents ${key}, which values.yaml does not have`);
    // Every key of values.yaml is documented itself or under a documented parent or child.
    const walk = (node: unknown, prefix: string): void => {
      if (node === null || typeof node !== 'object' || Array.isArray(node)) return;
      for (const [k, v] of Object.entries(node)) {
        const path = prefix ? `${prefix}.${k}` : k;
        const covered = documented.some((d) => d === path || path.startsWith(`${d}.`) || d.startsWith(`${path}.`));
        assert.ok(covered, `values.yaml key ${path} is not in the chart README`);
        if (!documented.includes(path)) walk(v, path);
      }
    };
    walk(values, '');
  });

  it('bad values stop the render with the key path and what is wrong', () => {
    const bad: [string[], RegExp][] = [
      [['--set', 'mode=gateway'], /mode: must be sidecar or standalone/],
      [['--set', 'mode=standalone', '--set', 'policy.service.url='], /policy\.service\.url: required when policy\.source is service/],
      [['--set', 'mode=standalone', '--set', 'policy.source=configMap'], /policy\.configMap: set bundleBase64/],
      [['--set', 'policy.service.url=http://b/x.tar.gz'], /sidecar\.containers: sidecar mode needs the application container/],
      [['--set', 'mode=standalone', '--set', 'policy.service.url=http://b/x.tar.gz', '--set', 'config.regate.listen.proxy.port=1'], /config\.regate\.listen: set by the chart/],
      [['--set', 'mode=standalone', '--set', 'policy.service.url=http://b/x.tar.gz', '--set', 'monitoring.kind=Probe'], /monitoring\.kind: must be PodMonitor, ServiceMonitor or empty/],
    ];
    // Too big for an argument list: a values file.
    const big = join(mkdtempSync(join(tmpdir(), 'regate-helm-big-')), 'values.yaml');
    writeFileSync(big, `mode: standalone\npolicy:\n  source: configMap\n  configMap:\n    bundleBase64: ${'A'.repeat(1_400_000)}\n`);
    bad.push([['-f', big], /exceeds the 1 MiB a ConfigMap can hold/]);
    for (const [args, want] of bad) {
      const r = run(helm, ['template', 'rel', chart, '--kube-version', KUBE_VERSION, ...args]);
      assert.notEqual(r.status, 0, args.join(' '));
      assert.match(r.stderr, want, args.join(' '));
    }
  });
});

type Container = { name: string; image: string; lifecycle?: { preStop?: { sleep?: { seconds: number } } }; securityContext?: Record<string, unknown> };
type DeploymentShape = { spec: { template: { spec: { containers: Container[]; volumes: unknown[]; securityContext?: Record<string, unknown>; automountServiceAccountToken?: boolean; serviceAccountName?: string; terminationGracePeriodSeconds: number } } } };

function deployment(objs: K8sObject[]): DeploymentShape {
  const dep = objs.find((o) => o.kind === 'Deployment');
  assert.ok(dep, 'a Deployment');
  return dep as unknown as DeploymentShape;
}

/** The regate.yaml in the rendered ConfigMap passes regate's own config validation. */
async function assertValidRegateConfig(objs: K8sObject[], env: Record<string, string>, options: { checkFiles?: boolean } = {}): Promise<void> {
  const cm = objs.find((o) => o.kind === 'ConfigMap' && typeof (o as { data?: Record<string, string> }).data?.['regate.yaml'] === 'string') as unknown as { data: Record<string, string> } | undefined;
  assert.ok(cm, 'a ConfigMap with regate.yaml');
  const file = join(mkdtempSync(join(tmpdir(), 'regate-helm-config-')), 'regate.yaml');
  writeFileSync(file, cm.data['regate.yaml']!);
  const config = await loadConfig(file, { env, checkFiles: options.checkFiles ?? true });
  assert.equal(config.shutdown.drain_delay_ms, 5000, 'drain_delay_ms 5000 on Kubernetes (endpoint removal races SIGTERM)');
  const grace = deployment(objs).spec.template.spec.terminationGracePeriodSeconds;
  assert.ok((config.shutdown.drain_delay_ms + config.shutdown.grace_ms) / 1000 < grace, 'drain + grace fit in terminationGracePeriodSeconds');
}

/** What the issue found wrong with the sidecar manifest, asserted fixed. */
function assertSidecarFixes(objs: K8sObject[], app: string): void {
  const spec = deployment(objs).spec.template.spec;
  assert.equal(spec.automountServiceAccountToken, false, 'no service-account token in the pod');
  assert.equal(spec.securityContext?.runAsNonRoot, undefined, 'runAsNonRoot is per container: the application image has its own user');
  const regate = spec.containers.find((c) => c.name === 'regate')!;
  assert.equal(regate.securityContext?.runAsNonRoot, true);
  assert.equal(regate.securityContext?.runAsUser, 1000);
  const model = spec.containers.find((c) => c.name === app)!;
  assert.ok((model.lifecycle?.preStop?.sleep?.seconds ?? 0) >= 25, 'the application outlives regate\'s drain (preStop sleep)');
  const np = objs.find((o) => o.kind === 'NetworkPolicy') as unknown as { spec: { ingress: { ports: { port: string }[]; from?: unknown[] }[] } } | undefined;
  assert.ok(np, 'a NetworkPolicy');
  const adminRule = np.spec.ingress.find((r) => r.ports.some((p) => p.port === 'admin'))!;
  assert.ok(adminRule.from && adminRule.from.length > 0, 'the admin port is not open to everyone');
  const monitor = objs.find((o) => o.kind === 'PodMonitor')!;
  assert.ok(monitor.metadata.labels?.release, 'the PodMonitor carries a release label for kube-prometheus-stack');
}
