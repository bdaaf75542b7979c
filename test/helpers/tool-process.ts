/** A real server binary the tests start (Hydra, Jaeger): its stderr tail, its exit, and readiness. */
import type { ChildProcess } from 'node:child_process';

/** The last 8,000 characters of `child`'s stderr (for error messages) and a promise of its exit. */
export function watchChild(child: ChildProcess): { stderr: () => string; exited: Promise<void> } {
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-8000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { stderr: () => stderr, exited };
}

/**
 * Poll `ready` every 200 ms until it is true. Throws with the stderr tail when the
 * process exits first, or (after killing it) when `timeoutMs` passes; a probe that
 * throws counts as "not listening yet".
 */
export async function waitUntilReady(child: ChildProcess, name: string, stderr: () => string, ready: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}:\n${stderr()}`);
    try {
      if (await ready()) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not become ready within ${timeoutMs / 1000} s:\n${stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
