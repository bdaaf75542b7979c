/**
 * Runs a real regate process (`node src/cli/main.ts serve`) for integration tests.
 *
 * The config is written to a temp dir with ports 0; the bound addresses are read
 * from the "listening" line regate logs on stderr. Decision-log lines (stdout) are
 * parsed into records as they arrive, so tests assert on objects, not strings.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliPath = join(repoRoot, 'src', 'cli', 'main.ts');

export interface RegateProcess {
  readonly proxyUrl: string;
  readonly adminUrl: string;
  /** The authz listener (`listen.authz`); '' when not configured. */
  readonly authzUrl: string;
  readonly configFile: string;
  readonly child: ChildProcessWithoutNullStreams;
  /** Decision-log records so far (stdout lines that parse as JSON). */
  readonly decisions: Record<string, unknown>[];
  /** Operational log records so far (stderr). */
  readonly logs: Record<string, unknown>[];
  /** Wait until a decision record matching `pred` appears (bounded). */
  waitForDecision(pred: (r: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Writes `config` (an object) as YAML into a fresh temp dir, returns the file path. */
export function writeConfig(config: unknown, dir = mkdtempSync(join(tmpdir(), 'regate-it-'))): string {
  const file = join(dir, 'regate.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

export async function startRegate(configFile: string, env: NodeJS.ProcessEnv = {}): Promise<RegateProcess> {
  const child = spawn(process.execPath, [cliPath, 'serve', '--config', configFile], {
    cwd: repoRoot,
    env: { ...process.env, REGATE_LOG_LEVEL: 'info', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const decisions: Record<string, unknown>[] = [];
  const logs: Record<string, unknown>[] = [];
  const stderrText: string[] = [];
  const waiters = new Set<() => void>();
  lines(child.stdout, (line) => {
    const rec = tryJson(line);
    if (rec) decisions.push(rec);
    for (const w of waiters) w();
  });
  lines(child.stderr, (line) => {
    stderrText.push(line);
    const rec = tryJson(line);
    if (rec) logs.push(rec);
    for (const w of waiters) w();
  });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));

  const listening = await new Promise<Record<string, unknown>>((res, rej) => {
    // A bound, not a speed assertion: generous because a loaded CI box can take seconds to
    // compile the policy. On timeout the child is killed so it cannot outlive the test.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`regate did not start within 30 s:\n${stderrText.join('\n')}`));
    }, 30_000);
    const check = (): void => {
      const rec = logs.find((l) => l.msg === 'listening');
      if (rec) {
        clearTimeout(timer);
        waiters.delete(check);
        res(rec);
      }
    };
    waiters.add(check);
    void exited.then((code) => {
      clearTimeout(timer);
      rej(new Error(`regate exited with ${code} before listening:\n${stderrText.join('\n')}`));
    });
  });

  return {
    proxyUrl: String(listening.proxy),
    adminUrl: String(listening.admin),
    authzUrl: listening.authz === undefined ? '' : String(listening.authz),
    configFile,
    child,
    decisions,
    logs,
    waitForDecision(pred, timeoutMs = 5_000) {
      return new Promise((res, rej) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          rej(new Error(`no matching decision record within ${timeoutMs} ms; have ${decisions.length}`));
        }, timeoutMs);
        const check = (): void => {
          const rec = decisions.find(pred);
          if (rec) {
            clearTimeout(timer);
            waiters.delete(check);
            res(rec);
          }
        };
        waiters.add(check);
        check();
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null) return child.exitCode;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** Runs a regate CLI command to completion (check, token, eval). */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cliPath, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) !== -1) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
}

function tryJson(line: string): Record<string, unknown> | null {
  if (!line.startsWith('{')) return null;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return null;
  }
}
