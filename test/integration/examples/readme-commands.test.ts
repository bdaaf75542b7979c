/**
 * Every command in every example README works as written.
 *
 * For each `examples/<name>/README.md`, the fenced ```sh blocks are run in
 * order, in ONE bash process started in the repository root — as a reader
 * pasting them into one terminal would, so a `TOKEN=$(...)` in one block is
 * seen by the next. Each command's exit status and output are captured
 * separately and checked against the marker its last line ends with:
 *
 *   # → ALLOW                 exit 0 (`regate eval`: allowed)
 *   # → DENY (text)           exit 3 (`regate eval`: denied) and `text` in the output
 *   # → exit N (text)         exit N and `text` in the output
 *   (no marker)               exit 0
 *
 * `(text)` is optional everywhere; it is matched literally against stdout and
 * stderr together. A command is one line, or several joined by a trailing
 * backslash; READMEs keep to that (no heredocs, no multi-line if/for).
 *
 * The build a README asks the reader for first (`npm run build`, which the
 * before hook runs once) is not repeated for every README; every other line
 * runs for real, with one substitution for speed: `npm run -s regate --` is
 * run as `bash scripts/regate.sh`, the script that npm command runs (checked
 * against package.json below, and the npm form is run once for real). npm's
 * own start-up would otherwise double the cost of each of the commands.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repoRoot } from '../../helpers/opa.ts';

/** One command of a README, with where it is and what it must do. */
interface ReadmeCommand {
  /** 1-based line of the command's first line in the README. */
  readonly line: number;
  /** The command as written (continuation lines joined with newlines). */
  readonly text: string;
  readonly exit: number;
  /** Text that must appear in the command's output, if any. */
  readonly expect?: string;
}

const MARKER = /\s#\s*→\s*(ALLOW|DENY|exit\s+(\d+))(?:\s+\((.+)\))?\s*$/;

/** The commands of a README's ```sh blocks, in order. */
function readmeCommands(markdown: string): ReadmeCommand[] {
  const lines = markdown.split('\n');
  const out: ReadmeCommand[] = [];
  let inSh = false;
  let pending: { line: number; parts: string[] } | null = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!inSh) {
      if (/^```sh\s*$/.test(line)) inSh = true;
      continue;
    }
    if (/^```\s*$/.test(line)) {
      if (pending) throw new Error(`line ${pending.line}: a command ends with a backslash at the end of its block`);
      inSh = false;
      continue;
    }
    if (!pending && (line.trim() === '' || line.trimStart().startsWith('#'))) continue;
    pending ??= { line: i + 1, parts: [] };
    pending.parts.push(line);
    if (line.endsWith('\\')) continue;
    const m = MARKER.exec(line);
    const kind = m?.[1];
    out.push({
      line: pending.line,
      text: pending.parts.join('\n'),
      exit: kind === undefined || kind === 'ALLOW' ? 0 : kind === 'DENY' ? 3 : Number(m![2]),
      ...(m?.[3] !== undefined ? { expect: m[3] } : {}),
    });
    pending = null;
  }
  if (inSh) throw new Error('unterminated ```sh block');
  return out;
}

/** Commands the before hook has run once for every README. */
const BUILT_ONCE = new Set(['npm run build']);

/** `npm run -s regate -- X` runs `bash scripts/regate.sh X` (package.json); the test runs the latter directly. */
const NPM_REGATE = /\bnpm run -s regate --(?=\s)/g;
const REGATE_SCRIPT = 'bash scripts/regate.sh';

interface Ran {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run `commands` in one bash process, in order; one result per command. */
async function runAll(commands: readonly ReadmeCommand[], env: NodeJS.ProcessEnv): Promise<Ran[]> {
  const dir = mkdtempSync(join(tmpdir(), 'regate-readme-'));
  try {
    const script = commands
      .map((c, i) =>
        BUILT_ONCE.has(c.text.trim())
          ? `echo 0 >"${dir}/${i}.rc"; : >"${dir}/${i}.out"; : >"${dir}/${i}.err"`
          : `{\n${c.text.replace(NPM_REGATE, REGATE_SCRIPT)}\n} >"${dir}/${i}.out" 2>"${dir}/${i}.err" </dev/null\necho $? >"${dir}/${i}.rc"`,
      )
      .join('\n');
    writeFileSync(join(dir, 'script.sh'), script);
    const r = await bash(join(dir, 'script.sh'), env);
    assert.equal(r.status, 0, `the README script itself failed: ${r.stderr}`);
    return commands.map((_, i) => {
      const read = (ext: string): string => {
        const f = join(dir, `${i}.${ext}`);
        return existsSync(f) ? readFileSync(f, 'utf8') : '';
      };
      const rc = read('rc').trim();
      return { status: rc === '' ? -1 : Number(rc), stdout: read('out'), stderr: read('err') };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `bash script` in the repository root, bounded by a timeout. */
function bash(script: string, env: NodeJS.ProcessEnv): Promise<Ran> {
  return new Promise((resolve, reject) => {
    execFile('bash', [script], { cwd: repoRoot, env, encoding: 'utf8', timeout: 600_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ status: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
}

/** Run `jobs` with at most `limit` in flight (a small worker pool); one promise per job, in order. */
function limited<T>(jobs: readonly (() => Promise<T>)[], limit: number): Promise<T>[] {
  const settle = jobs.map(() => {
    let resolve!: (v: T) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Awaited later by its own suite; until then a failure is not "unhandled".
    promise.catch(() => {});
    return { promise, resolve, reject };
  });
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      try {
        settle[i]!.resolve(await jobs[i]!());
      } catch (err) {
        settle[i]!.reject(err);
      }
    }
  };
  for (let k = 0; k < Math.min(limit, jobs.length); k++) void worker();
  return settle.map((s) => s.promise);
}

const examplesDir = join(repoRoot, 'examples');
const readmes = readdirSync(examplesDir)
  .map((name) => join(examplesDir, name, 'README.md'))
  .filter((f) => existsSync(f))
  .sort();

const env: NodeJS.ProcessEnv = {
  ...process.env,
  PATH: [join(repoRoot, '.tools', 'node', 'bin'), join(repoRoot, '.tools', 'bin'), process.env.PATH ?? ''].join(delimiter),
  // A reader's terminal has no frozen clock: the README must say --time where it needs one.
  REGATE_CLOCK: '',
  NO_COLOR: '1',
};

before(() => {
  // What every README asks for first. tsc (not `npm run build`'s npm wrapper) keeps the error output readable.
  const build = spawnSync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 300_000,
  });
  assert.equal(build.status, 0, `npm run build failed:\n${build.stdout}${build.stderr}`);
  const scripts = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  assert.equal(scripts.regate, `exec ${REGATE_SCRIPT}`, 'the READMEs\' `npm run -s regate --` is run as this script; update NPM_REGATE if it changed');
  // The npm form, once, for real.
  const viaNpm = spawnSync('npm', ['run', '-s', 'regate', '--', 'version'], { cwd: repoRoot, env, encoding: 'utf8', timeout: 60_000 });
  assert.equal(viaNpm.status, 0, `npm run -s regate -- version failed:\n${viaNpm.stdout}${viaNpm.stderr}`);
  assert.match(viaNpm.stdout, /^regate \d/);
});

describe('README command parser', () => {
  it('joins continuation lines, skips comments, reads markers', () => {
    const md = [
      'text',
      '```sh',
      '# a comment',
      'TOKEN=$(npm run -s regate -- token \\',
      "  --claim 'a=1')",
      '',
      'npm run -s regate -- eval --path / # → DENY (not allowed)',
      'npm run -s regate -- eval --path /x   # → ALLOW',
      'false # → exit 1',
      '```',
      '```json',
      '{"not": "run"}',
      '```',
    ].join('\n');
    assert.deepEqual(readmeCommands(md), [
      { line: 4, text: "TOKEN=$(npm run -s regate -- token \\\n  --claim 'a=1')", exit: 0 },
      { line: 7, text: 'npm run -s regate -- eval --path / # → DENY (not allowed)', exit: 3, expect: 'not allowed' },
      { line: 8, text: 'npm run -s regate -- eval --path /x   # → ALLOW', exit: 0 },
      { line: 9, text: 'false # → exit 1', exit: 1 },
    ]);
  });
});

describe('every example has a README with commands', () => {
  it('each examples/<name>/ with a regate.yaml has a README.md with at least one ```sh block', () => {
    const withConfig = readdirSync(examplesDir).filter((n) => existsSync(join(examplesDir, n, 'regate.yaml')) && n !== 'quickstart');
    for (const name of withConfig) {
      const f = join(examplesDir, name, 'README.md');
      assert.ok(existsSync(f), `examples/${name}/README.md is missing`);
      assert.ok(readmeCommands(readFileSync(f, 'utf8')).length > 0, `examples/${name}/README.md has no sh commands`);
    }
  });
});

// The READMEs are independent (each its own shell): run a few at once, once the build is done.
const parsed = readmes.map((file) => ({ file, commands: readmeCommands(readFileSync(file, 'utf8')) }));
let started: Promise<Ran[]>[] | undefined;
const resultsOf = (index: number): Promise<Ran[]> => {
  started ??= limited(
    parsed.map(({ commands }) => () => runAll(commands, env)),
    3,
  );
  return started[index]!;
};

parsed.forEach(({ file, commands }, index) => {
  const rel = relative(repoRoot, file);
  describe(rel, () => {
    let results: Ran[] = [];
    before(async () => {
      results = await resultsOf(index);
    });
    after(() => {
      results = [];
    });
    commands.forEach((c, i) => {
      const title = `line ${c.line}: ${c.text.split('\n')[0]!.replace(MARKER, '').trim().slice(0, 100)}`;
      it(title, () => {
        const r = results[i]!;
        const shown = `\n$ ${c.text}\n--- exit ${r.status}\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`;
        assert.equal(r.status, c.exit, `${rel}:${c.line} exited ${r.status}, README says ${c.exit}${shown}`);
        if (c.expect !== undefined) {
          assert.ok(`${r.stdout}\n${r.stderr}`.includes(c.expect), `${rel}:${c.line}: output lacks "${c.expect}"${shown}`);
        }
      });
    });
  });
});
