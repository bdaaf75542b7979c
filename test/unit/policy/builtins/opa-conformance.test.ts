/**
 * OPA's own conformance cases for the `time.*` builtins, run through the real
 * engine: every case is compiled by `opa build -t wasm` and evaluated by
 * regate's opa-wasm engine with regate's host builtins.
 *
 * The corpus is vendored in test/fixtures/opa-conformance/ (OPA's files
 * verbatim, Apache-2.0; its README lists the OPA commit of every file); a
 * missing or unlisted file fails the run instead of silently testing less.
 *
 * Each case becomes one bundle: the case's modules, its `data`, and a wrapper
 * `package regate_conformance` whose `result` set holds one object per
 * solution of the case's query, keyed by the query's variables. Bundles are
 * built two at a time while earlier cases run (~25 ms each).
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { readBundle } from '../../../../src/policy/bundle.ts';
import { hostBuiltins, type HostBuiltin } from '../../../../src/policy/builtins/index.ts';
import { parseDurationNs } from '../../../../src/policy/builtins/time.ts';
import { stringifyJson } from '../../../../src/policy/precise-json.ts';
import { loadPolicyEngine } from '../../../../src/policy/wasm.ts';
import { systemClock } from '../../../../src/clock.ts';
import { buildBundle, opaBin, repoRoot } from '../../../helpers/opa.ts';

const CORPUS = join(repoRoot, 'test', 'fixtures', 'opa-conformance');
const ENTRYPOINT = 'regate_conformance/result';

/** One case from the YAML files (the fields OPA's runner reads that we use). */
interface ConformanceCase {
  readonly file: string;
  readonly note: string;
  readonly query: string;
  readonly modules: readonly string[];
  readonly data?: unknown;
  readonly input?: unknown;
  readonly want_result?: readonly Record<string, unknown>[];
  readonly want_error?: string;
  readonly strict_error?: boolean;
}

/**
 * Cases OPA's wasm compiler itself cannot handle, keyed by note, with the
 * error `opa build` gives. Each is checked to still fail that way, so the
 * list breaks as soon as OPA learns to compile one. Empty with opa 1.22: its
 * planner compiles every case here, `with` on builtins included. A case goes
 * here only if `opa build -t wasm` refuses it, never because regate fails it.
 */
const EXPECTED_BUILD_FAILURES: ReadonlyMap<string, RegExp> = new Map<string, RegExp>([]);

/**
 * What OPA's test runner has and a regate deployment does not:
 * - `test.sleep` exists only in OPA's tests (0947 sleeps between two
 *   `time.now_ns()` calls); here a real, synchronous sleep, since a wasm call
 *   stack cannot await. `opa build` learns its signature from a capabilities file.
 * - `opa.runtime` answers `{}` when OPA runs without a runtime, as its test
 *   runner does; one `with` case swaps `time.now_ns` for it.
 */
const RUNNER_BUILTINS: Readonly<Record<string, HostBuiltin>> = {
  'test.sleep': (_ctx, duration) => {
    const ms = Number(parseDurationNs(String(duration)) / 1_000_000n);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    return null;
  },
  'opa.runtime': () => ({}),
};
const TEST_SLEEP_DECL = { name: 'test.sleep', decl: { type: 'function', args: [{ type: 'string' }], result: { type: 'null' } } };

/** opa's own capabilities plus `test.sleep`, written once for every build. */
async function capabilitiesFile(): Promise<string> {
  const { stdout } = await promisify(execFile)(opaBin(), ['capabilities', '--current'], { maxBuffer: 64 * 1024 * 1024 });
  const capabilities = JSON.parse(stdout) as { builtins: unknown[] };
  capabilities.builtins.push(TEST_SLEEP_DECL);
  const dir = await mkdtemp(join(tmpdir(), 'regate-conformance-'));
  tempDirs.push(dir);
  const file = join(dir, 'capabilities.json');
  await writeFile(file, JSON.stringify(capabilities));
  return file;
}

async function yamlFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

async function loadCases(): Promise<ConformanceCase[]> {
  if (!existsSync(CORPUS)) return [];
  const cases: ConformanceCase[] = [];
  for (const file of await yamlFiles(CORPUS)) {
    // intAsBigInt: the corpus holds int64 extremes that a double cannot.
    const doc = parseYaml(await readFile(file, 'utf8'), { intAsBigInt: true }) as { cases?: Omit<ConformanceCase, 'file'>[] };
    for (const c of doc.cases ?? []) cases.push({ ...c, file: relative(CORPUS, file) });
  }
  return cases;
}

const KEYWORDS = new Set(['data', 'input', 'with', 'as', 'not', 'some', 'in', 'every', 'if', 'contains', 'else', 'default', 'true', 'false', 'null']);

/** The variables a query binds: bare identifiers that are not refs, calls or keywords. */
function queryVariables(query: string): string[] {
  const code = query.replace(/"(?:[^"\\]|\\.)*"|`[^`]*`/g, '""');
  const vars = new Set<string>();
  for (const m of code.matchAll(/(?<![\w.])([A-Za-z_]\w*)(?![\w.(])/g)) if (!KEYWORDS.has(m[1]!)) vars.add(m[1]!);
  return [...vars].sort();
}

function wrapperModule(c: ConformanceCase, vars: readonly string[]): string {
  const object = `{${vars.map((v) => `${JSON.stringify(v)}: ${v}`).join(', ')}}`;
  return `package regate_conformance\n\nresult contains ${object} if {\n${c.query.trim()}\n}\n`;
}

/** A result set in a canonical text form: solutions sorted, bigints exact, key order ignored. */
function canonical(solutions: readonly unknown[]): string {
  const sortKeys = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => [k, sortKeys(x)]));
    return v;
  };
  return `[${solutions.map((s) => stringifyJson(sortKeys(s))!).sort().join(',')}]`;
}

/** A tiny semaphore: at most `limit` builds at once on the 2-core box. */
function limiter(limit: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: (() => void)[] = [];
  return async (fn) => {
    if (active >= limit) await new Promise<void>((resolve) => queue.push(resolve));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}

const tempDirs: string[] = [];
const cases = await loadCases();
const capabilities = cases.length > 0 ? await capabilitiesFile() : '';
const builtins = { ...hostBuiltins(), ...RUNNER_BUILTINS };
const limit = limiter(2);

/** Build the case's bundle; resolves to the bundle path or the `opa build` error. */
function build(c: ConformanceCase, vars: readonly string[]): Promise<string | Error> {
  const files: Record<string, string> = { 'regate_conformance.rego': wrapperModule(c, vars), 'data.json': stringifyJson(c.data ?? {})! };
  c.modules.forEach((m, i) => (files[`module_${i}.rego`] = m));
  return limit(() => buildBundle({ files, entrypoints: [ENTRYPOINT], args: ['--capabilities', capabilities] })).then(
    (path) => {
      tempDirs.push(dirname(path));
      return path;
    },
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  );
}

after(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe(`OPA conformance (${relative(repoRoot, CORPUS) || CORPUS})`, () => {
  it('has the corpus', () => {
    assert.ok(existsSync(CORPUS), `OPA conformance corpus not found at ${CORPUS}`);
    assert.ok(cases.length > 0, `no cases under ${CORPUS}`);
  });

  it('every vendored file is listed in its README with an OPA commit, and every listed file is there', async () => {
    const readme = await readFile(join(CORPUS, 'README.md'), 'utf8');
    // Table rows: | time/test-time-0949.yaml | <40-hex commit> | ...; legacy rows are under legacy/test/cases/testdata/v1/.
    const listed = new Set<string>();
    let prefix = 'testdata/';
    for (const line of readme.split('\n')) {
      if (line.startsWith('### `legacy/`')) prefix = 'legacy/test/cases/testdata/v1/';
      const row = /^\| ([\w./-]+\.yaml) \| ([0-9a-f]{40}) \|/.exec(line);
      if (row) listed.add(prefix + row[1]);
    }
    const present = new Set((await yamlFiles(CORPUS)).map((f) => relative(CORPUS, f)));
    assert.deepEqual([...present].sort(), [...listed].sort());
  });

  // Start every build now; each test awaits its own.
  const planned = cases.map((c) => {
    const vars = queryVariables(c.query);
    return { c, vars, bundle: build(c, vars) };
  });

  for (const { c, vars, bundle } of planned) {
    it(`${c.note} [${c.file}]`, async () => {
      if (c.want_result !== undefined && c.want_result.length > 0) {
        // The wrapper must capture exactly the variables the case expects.
        assert.deepEqual(vars, Object.keys(c.want_result[0]!).sort(), 'query variables');
      }
      const built = await bundle;
      const expectedFailure = EXPECTED_BUILD_FAILURES.get(c.note);
      if (expectedFailure) {
        assert.ok(built instanceof Error, `now compiles for wasm: remove "${c.note}" from EXPECTED_BUILD_FAILURES`);
        assert.match(built.message, expectedFailure);
        return;
      }
      if (built instanceof Error) throw built;

      const engine = await loadPolicyEngine(await readBundle(built), { builtins });
      assert.deepEqual(engine.unsupportedBuiltins, [], 'builtins the host lacks');
      // One clock read per evaluation, as regate does per request.
      const run = () => engine.evaluateRaw(ENTRYPOINT, c.input, systemClock.nowNs());

      if (c.want_error !== undefined) {
        assert.equal(c.strict_error, true, 'regate treats builtin errors strictly; a non-strict error case needs its own handling');
        assert.throws(run, (err: Error) => {
          assert.ok(err.message.includes(c.want_error!), `"${err.message}" should contain "${c.want_error}"`);
          return true;
        });
        return;
      }
      const resultSet = run();
      assert.equal(resultSet.length, 1, 'a partial set rule is always defined');
      const solutions = resultSet[0]!.result as unknown[];
      // Compare exact text: int64 values such as 9223372036854775807 must not round.
      assert.equal(canonical(solutions), canonical(c.want_result ?? []));
    });
  }
});

