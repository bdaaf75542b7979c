/**
 * Differential test of every shipped example policy (examples/<name>/policy
 * plus the shared rego/ library they import): generated inputs in the
 * documented shape, evaluated by regate's engine and by the pinned `opa run`,
 * results compared deeply. `REGATE_DIFF_CASES=<n>` runs n cases per
 * entrypoint instead of the default (the long mode; see the README's
 * "Known differences from OPA").
 */

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readBundle } from '../../src/policy/bundle.ts';
import { loadPolicyEngine } from '../../src/policy/wasm.ts';
import { buildExampleBundle, entrypointsOf, exampleConfig, exampleDir } from '../helpers/examples.ts';
import { repoRoot } from '../helpers/opa.ts';
import { caseCount, emptyReport, runDifferential, summarize, type KnownDifference } from './compare.ts';
import { policyCases, regoStrings, stringsIn, templateParams, type PolicyShape } from './generate.ts';
import { startOpaServer } from './opa-server.ts';

const CASES = caseCount(1500);

/**
 * README "Known differences from OPA": builtins compiled natively into the
 * wasm module (concat, sort, ...) make a call with wrong operand types
 * undefined, where OPA's strict builtin errors stop the evaluation. Only
 * accepted when regate does not allow (an OPA error denies too).
 */
const KNOWN: readonly KnownDifference[] = [
  {
    id: 'native-builtin-type-error',
    applies: (d) => d.opa.startsWith('error:') && /operand \d+ must be/.test(d.opa) && !d.regate.includes('"allow":true') && d.regate !== 'true',
  },
];
const NOW_NS = 1795455000123456789n;

const examples = readdirSync(join(repoRoot, 'examples'), { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(repoRoot, 'examples', d.name, 'regate.yaml')))
  .map((d) => d.name)
  .sort();

function regoFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.rego') && !f.endsWith('_test.rego'))
    .map((f) => join(dir, f));
}

/** Routes and vocabulary of an example: config strings, data.json strings, Rego string literals. */
function shapeOf(name: string): PolicyShape {
  const config = exampleConfig(name);
  const policyDir = join(exampleDir(name), 'policy');
  const vocab = stringsIn(config);
  const dataFile = join(policyDir, 'data.json');
  if (existsSync(dataFile)) stringsIn(JSON.parse(readFileSync(dataFile, 'utf8')), vocab);
  for (const f of [...regoFiles(policyDir), ...regoFiles(join(repoRoot, 'rego'))]) for (const s of regoStrings(readFileSync(f, 'utf8'))) vocab.add(s);
  for (const s of ['alice', 'bob', 'mallory', 'stranger', 'read', 'write', 'admin']) vocab.add(s);
  const routes = (config.routes as Record<string, any>[]).map((r) => ({
    id: String(r.id),
    methods: (r.match?.methods as string[] | undefined) ?? ['GET'],
    params: templateParams(String(r.match?.path ?? '')),
    attributes: r.attributes ?? {},
  }));
  return { routes, vocab: [...vocab].filter((s) => s.length < 200) };
}

describe('differential: example policies, regate vs opa', { concurrency: 1 }, () => {
  it('finds every example', () => assert.ok(examples.length >= 5, `examples: ${examples.join(', ')}`));

  for (const [index, name] of examples.entries()) {
    it(`${name}: 0 semantic mismatches over ${CASES} cases per entrypoint`, async () => {
      const bundle = await readBundle(await buildExampleBundle(name));
      const engine = await loadPolicyEngine(bundle);
      const opa = await startOpaServer([join(exampleDir(name), 'policy'), join(repoRoot, 'rego')]);
      try {
        const report = emptyReport();
        const shape = shapeOf(name);
        for (const ep of entrypointsOf(exampleConfig(name))) {
          await runDifferential(engine, opa, ep, policyCases(shape, CASES, 1000 + index), NOW_NS, report, KNOWN);
        }
        const text = summarize(name, report);
        console.log(report.orderingOnly.length > 0 ? text : text.split('\n')[0]);
        assert.equal(report.mismatches.length, 0, text);
        assert.ok(report.agree > 0);
      } finally {
        await opa.stop();
      }
    });
  }
});
