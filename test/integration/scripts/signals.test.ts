/**
 * Signals reach regate however the README starts it. Each way is started as a
 * reader would (a real shell script, real npm, a real regate), then the signal
 * goes to the PID the shell got (`$!`): SIGHUP must reload regate (a
 * `trigger: signal` "reloaded" record) and SIGTERM must stop regate — and, for
 * the quickstart, the model API — with exit 0 and every port freed.
 *
 * Also the quickstart's fail-fast path: a taken model-API port ends the script
 * with status 1 and one line saying so, before regate starts.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Server } from 'node:net';

import { after, describe, it } from 'node:test';
import { repoRoot } from '../../helpers/regate-process.ts';
import { freePort } from '../../helpers/ports.ts';

type Rec = Record<string, unknown>;

interface Started {
  readonly child: ChildProcess;
  readonly records: Rec[];
  readonly text: { stdout: string; stderr: string };
  /** Wait (bounded) until a JSON line on stdout or stderr matches. */
  until(pred: (r: Rec) => boolean, what: string, timeoutMs?: number): Promise<Rec>;
  /** Resolves with the exit code (bounded). */
  exit(timeoutMs?: number): Promise<number | null>;
  /** Everything it started is known to have exited: stop tracking its PIDs. */
  forget(): void;
}

/**
 * PIDs this file started that may have to be killed if a test fails half way
 * (never by name). A test that saw its processes exit forgets them, so a
 * recycled PID is never signalled.
 */
const started = new Set<number>();
after(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

function start(cmd: string, args: string[], env: NodeJS.ProcessEnv): Started {
  const child = spawn(cmd, args, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  started.add(child.pid!);
  const records: Rec[] = [];
  const text = { stdout: '', stderr: '' };
  const waiters = new Set<() => void>();
  for (const name of ['stdout', 'stderr'] as const) {
    let buf = '';
    child[name]!.setEncoding('utf8');
    child[name]!.on('data', (chunk: string) => {
      text[name] += chunk;
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        try {
          const rec = JSON.parse(line) as Rec;
          records.push(rec);
          if (typeof rec.pid === 'number' && !mine.has(rec.pid)) {
            mine.add(rec.pid);
            started.add(rec.pid);
          }
        } catch {
          // not a record
        }
      }
      for (const w of waiters) w();
    });
  }
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const mine = new Set<number>([child.pid!]);
  return {
    forget() {
      for (const pid of mine) started.delete(pid);
    },
    child,
    records,
    text,
    until(pred, what, timeoutMs = 120_000) {
      return new Promise((res, rej) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          rej(new Error(`no ${what} within ${timeoutMs} ms:\n${text.stderr.slice(-3000)}`));
        }, timeoutMs);
        const check = (): void => {
          const rec = records.find(pred);
          if (rec) {
            clearTimeout(timer);
            waiters.delete(check);
            res(rec);
          }
        };
        waiters.add(check);
        check();
        void exited.then(() => {
          check();
          if (!records.find(pred)) {
            clearTimeout(timer);
            waiters.delete(check);
            rej(new Error(`exited (${child.exitCode}) before ${what}:\n${text.stderr.slice(-3000)}`));
          }
        });
      });
    },
    exit(timeoutMs = 60_000) {
      return Promise.race([
        exited,
        new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`did not exit within ${timeoutMs} ms:\n${text.stderr.slice(-3000)}`)), timeoutMs).unref()),
      ]);
    },
  };
}

/** Whether something accepts connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((res) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      res(true);
    });
    socket.once('error', () => res(false));
  });
}

const portOf = (url: unknown): number => Number(new URL(String(url)).port);
const isListening = (r: Rec): boolean => r.msg === 'listening' && r.name === 'regate';
const isSignalReload = (r: Rec): boolean => r.msg === 'reloaded' && r.trigger === 'signal';
const QUICKSTART_CONFIG = 'examples/quickstart/regate.yaml';

/** The ports of a running quickstart: regate's (from its listening record) and the model API's. */
async function quickstartPorts(s: Started): Promise<number[]> {
  const api = await s.until((r) => r.msg === 'model API listening', 'model API listening line');
  const regate = await s.until(isListening, 'regate listening line');
  return [portOf(api.url), portOf(regate.proxy), portOf(regate.admin)];
}

/** Every port closed, so every process that held one has exited: forget their PIDs. */
async function assertFreed(s: Started, ports: number[]): Promise<void> {
  for (const port of ports) assert.equal(await listening(port), false, `port ${port} still taken`);
  s.forget();
}

describe('signals reach regate, however it was started', () => {
  it('bash scripts/quickstart.sh &: SIGHUP reloads regate, SIGTERM stops regate and the model API (exit 0, ports freed)', async () => {
    const s = start('bash', ['scripts/quickstart.sh'], { MODEL_API_PORT: String(await freePort()), REGATE_PROXY_PORT: '0', REGATE_ADMIN_PORT: '0' });
    const ports = await quickstartPorts(s);
    for (const port of ports) assert.equal(await listening(port), true, `port ${port} listens`);
    s.child.kill('SIGHUP');
    await s.until(isSignalReload, 'reload after SIGHUP');
    assert.equal(s.child.exitCode, null, 'the script is still running after SIGHUP');
    s.child.kill('SIGTERM');
    assert.equal(await s.exit(), 0);
    assert.ok(s.records.some((r) => r.msg === 'stopped'), 'regate stopped gracefully');
    await assertFreed(s, ports);
  });

  it('npm start: SIGTERM to npm stops regate and the model API (exit 0, ports freed)', async () => {
    const s = start('npm', ['start'], { MODEL_API_PORT: String(await freePort()), REGATE_PROXY_PORT: '0', REGATE_ADMIN_PORT: '0' });
    const ports = await quickstartPorts(s);
    s.child.kill('SIGTERM');
    assert.equal(await s.exit(), 0);
    assert.ok(s.records.some((r) => r.msg === 'stopped'), 'regate stopped gracefully');
    await assertFreed(s, ports);
  });

  it('scripts/regate.sh serve &: $! is regate itself (SIGHUP reloads, SIGTERM exits 0)', async () => {
    const s = start('bash', ['scripts/regate.sh', 'serve', '--config', QUICKSTART_CONFIG], { REGATE_PROXY_PORT: '0', REGATE_ADMIN_PORT: '0' });
    const up = await s.until(isListening, 'regate listening line');
    assert.equal(up.pid, s.child.pid, 'the PID the shell got is regate');
    s.child.kill('SIGHUP');
    await s.until(isSignalReload, 'reload after SIGHUP');
    s.child.kill('SIGTERM');
    assert.equal(await s.exit(), 0);
    await assertFreed(s, [portOf(up.proxy), portOf(up.admin)]);
  });

  it('npm run -s regate -- serve &: SIGTERM to npm reaches regate (exit 0, ports freed)', async () => {
    const s = start('npm', ['run', '-s', 'regate', '--', 'serve', '--config', QUICKSTART_CONFIG], { REGATE_PROXY_PORT: '0', REGATE_ADMIN_PORT: '0' });
    const up = await s.until(isListening, 'regate listening line');
    s.child.kill('SIGTERM');
    assert.equal(await s.exit(), 0);
    assert.ok(s.records.some((r) => r.msg === 'stopped' && r.pid === up.pid), 'regate itself stopped gracefully');
    await assertFreed(s, [portOf(up.proxy), portOf(up.admin)]);
  });
});

describe('quickstart fails fast', () => {
  let holder: Server | undefined;
  after(() => holder?.close());

  it('when the model API port is taken: exit 1, one line naming the port and the variable, regate never started', async () => {
    holder = createServer();
    await new Promise<void>((res) => holder!.listen(0, '127.0.0.1', res));
    const taken = (holder.address() as { port: number }).port;
    const s = start('bash', ['scripts/quickstart.sh'], { MODEL_API_PORT: String(taken), REGATE_PROXY_PORT: '0', REGATE_ADMIN_PORT: '0' });
    assert.equal(await s.exit(180_000), 1);
    const lines = s.text.stderr.split('\n').filter((l) => l.startsWith('quickstart:'));
    assert.deepEqual(lines, [`quickstart: the model API cannot listen on 127.0.0.1:${taken}: the port is already in use; choose another port: MODEL_API_PORT=<port> npm start`]);
    assert.doesNotMatch(s.text.stderr + s.text.stdout, /EADDRINUSE|\n\s+at /, 'no stack trace');
    assert.ok(!s.records.some(isListening), 'regate did not start');
    s.forget(); // the script waited for the model API it started
  });
});

