// Starting and stopping the processes a scenario needs, each a child of the
// orchestrator, all tracked so that every one is stopped at the end — also on
// an error or Ctrl-C.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const children = new Set();

/** Spawn a tracked child; stdout/stderr lines go to `onLine(stream, line)`. */
export function start(cmd, args, { env = {}, onLine = () => {}, cwd } = {}) {
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  void exited.then(() => children.delete(child));
  const tail = [];
  for (const [name, stream] of [['stdout', child.stdout], ['stderr', child.stderr]]) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        tail.push(`${name}: ${line}`);
        if (tail.length > 40) tail.shift();
        onLine(name, line);
      }
    });
  }
  return { child, exited, tail, pid: child.pid };
}

/** Resolve with the first stdout/stderr JSON line matching `pred` (bounded). */
export function waitForLine(proc, pred, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${proc.child.spawnargs.slice(0, 3).join(' ')}:\n${proc.tail.join('\n')}`)), timeoutMs);
    const onData = (chunk) => {
      for (const line of String(chunk).split('\n')) {
        if (!line.startsWith('{')) continue;
        let rec;
        try {
          rec = JSON.parse(line);
        } catch {
          continue;
        }
        if (pred(rec)) {
          clearTimeout(timer);
          proc.child.stdout.off('data', onData);
          proc.child.stderr.off('data', onData);
          resolve(rec);
          return;
        }
      }
    };
    proc.child.stdout.on('data', onData);
    proc.child.stderr.on('data', onData);
    void proc.exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${proc.child.spawnargs.slice(0, 3).join(' ')} exited (${code ?? signal}):\n${proc.tail.join('\n')}`));
    });
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once exited. */
export async function stop(proc, graceMs = 10_000) {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
  await proc.exited;
  clearTimeout(timer);
}

/** Stop every child still running (exit path). */
export async function stopAll() {
  await Promise.allSettled([...children].map((child) => stop({ child, exited: new Promise((r) => child.once('exit', r)) }, 3000)));
}

/** A free loopback port (for opa, which needs an explicit address). */
export async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** Poll `url` until it answers 200 (bounded). */
export async function waitForHttp(url, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready within ${timeoutMs} ms`);
    await sleep(100);
  }
}
