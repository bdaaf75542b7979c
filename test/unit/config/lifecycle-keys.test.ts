/** Config keys of the live policy lifecycle: reload, shutdown, routes[].dry_run / shadow, policy.candidate. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig, parseConfig } from '../../../src/config/load.ts';
import { ConfigErrors } from '../../../src/errors.ts';
import { configProblems } from '../../helpers/config-problems.ts';

const FILE = '/etc/regate/regate.yaml';
const base = (policy: string, route: string, top = ''): string => `upstreams: {app: {url: "http://a"}}
policy: {bundle: b.tar.gz, default_entrypoint: app/decision${policy}}
routes:
  - {id: r, match: {methods: [GET], path: /}, upstream: app, auth: none${route}}
${top}`;

const problems = (text: string): string[] => configProblems(text, FILE);

describe('lifecycle config keys', () => {
  it('defaults: reload watched with a 300 ms debounce, 10 s grace, no drain delay, routes enforce, no shadow', () => {
    const c = parseConfig(base('', ''), FILE);
    assert.deepEqual(c.reload, { watch: true, debounce_ms: 300 });
    assert.deepEqual(c.shutdown, { grace_ms: 10_000, drain_delay_ms: 0 });
    assert.equal(c.routes[0]!.dry_run, false);
    assert.equal(c.routes[0]!.shadow, undefined);
    assert.equal(c.policy.candidate, undefined);
  });

  it('a shadow defaults to the active bundle; a candidate bundle path is resolved against the config file', () => {
    const c = parseConfig(base(', candidate: {bundle: ../cand/c.tar.gz}', ', dry_run: true, shadow: {entrypoint: app/v2}'), FILE);
    assert.equal(c.routes[0]!.dry_run, true);
    assert.deepEqual(c.routes[0]!.shadow, { entrypoint: 'app/v2', bundle: 'active' });
    assert.deepEqual(c.policy.candidate, { bundle: '/etc/cand/c.tar.gz' });
  });

  it('a shadow of the candidate bundle needs policy.candidate', () => {
    assert.match(problems(base('', ', shadow: {entrypoint: app/decision, bundle: candidate}')).join('\n'), /\/routes\/0\/shadow\/bundle: names the candidate bundle, but policy.candidate is not configured/);
  });

  it('a shadow of the enforced entrypoint in the same bundle is refused (it could never disagree)', () => {
    assert.match(problems(base('', ', shadow: {entrypoint: app/decision}')).join('\n'), /\/routes\/0\/shadow\/entrypoint: is the entrypoint this route enforces/);
    // The same entrypoint name in the candidate bundle is the usual migration: allowed.
    parseConfig(base(', candidate: {bundle: c.tar.gz}', ', shadow: {entrypoint: app/decision, bundle: candidate}'), FILE);
  });

  it('precise schema errors', () => {
    const text = base(
      ', candidate: {bundel: c.tar.gz}',
      ', dry_run: "yes", shadow: {bundle: next}',
      'reload: {debounce_ms: -1}\nshutdown: {grace_ms: 1.5, drain_delay_ms: 600001}\n',
    );
    const all = problems(text).join('\n');
    for (const expected of [
      /\/policy\/candidate\/bundel: unknown key "bundel" \(did you mean "bundle"\?\)/,
      /\/routes\/0\/dry_run: must be true or false/,
      /\/routes\/0\/shadow\/entrypoint: missing required key "entrypoint"/,
      /\/routes\/0\/shadow\/bundle: must be one of active, candidate/,
      /\/reload\/debounce_ms: must be between 0 and 60000/,
      /\/shutdown\/grace_ms: must be an integer/,
      /\/shutdown\/drain_delay_ms: must be between 0 and 600000/,
    ]) {
      assert.match(all, expected);
    }
  });

  it('loadConfig checks that the candidate bundle file exists', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'regate-cand-'));
    writeFileSync(join(dir, 'b.tar.gz'), '');
    const file = join(dir, 'regate.yaml');
    writeFileSync(file, base(', candidate: {bundle: missing.tar.gz}', ''));
    await assert.rejects(loadConfig(file), (err: unknown) => err instanceof ConfigErrors && /\/policy\/candidate\/bundle: cannot read .*missing\.tar\.gz: file not found/.test(err.message));
  });
});
