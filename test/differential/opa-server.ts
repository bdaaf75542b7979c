/**
 * The pinned `opa` as an oracle: one `opa run --server` per test file, on a
 * Unix socket in a temp directory (no TCP port to race for), queried through
 * the Data API with `strict-builtin-errors` — the semantics regate promises.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseJsonPrecise } from '../../src/policy/precise-json.ts';
import { opaBin } from '../helpers/opa.ts';

/** What OPA answered for one query: a value, undefined, or an evaluation error. */
export type OpaOutcome =
  | { readonly kind: 'result'; readonly value: unknown }
  | { readonly kind: 'undefined' }
  | { readonly kind: 'error'; readonly message: string };

export interface OpaServer {
  /** Evaluate `data.<path>` (slash form) with `inputText` (JSON text) as input. */
  query(path: string, inputText: string): Promise<OpaOutcome>;
  stop(): Promise<void>;
}

function post(agent: Agent, socketPath: string, path: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { agent, socketPath, method: 'POST', path, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Start `opa run --server` on `paths` (directories or files, `*_test.rego`
 * ignored, as `opa build` is told for the bundles). Resolves once the server
 * answers; rejects with OPA's stderr if it exits first or takes over 60 s.
 */
export async function startOpaServer(paths: readonly string[]): Promise<OpaServer> {
  const dir = mkdtempSync(join(tmpdir(), 'regate-diff-opa-'));
  const socketPath = join(dir, 'opa.sock');
  const child: ChildProcess = spawn(
    opaBin(),
    ['run', '--server', '--addr', `unix://${socketPath}`, '--log-level', 'error', '--ignore', '*_test.rego', ...paths],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`opa run exited (${child.exitCode}): ${stderr}`);
    try {
      const r = await post(agent, socketPath, '/v1/data', '{}');
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`opa run did not answer within 60 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    async query(path, inputText) {
      const r = await post(agent, socketPath, `/v1/data/${path}?strict-builtin-errors=true`, `{"input":${inputText}}`);
      if (r.status !== 200) {
        const body = JSON.parse(r.text) as { message?: string; errors?: { message?: string }[] };
        const detail = body.errors?.map((e) => e.message).join('; ');
        return { kind: 'error', message: detail ? `${body.message}: ${detail}` : String(body.message ?? r.text) };
      }
      const body = parseJsonPrecise(r.text) as { result?: unknown };
      return Object.hasOwn(body, 'result') ? { kind: 'result', value: body.result } : { kind: 'undefined' };
    },
    async stop() {
      agent.destroy();
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
