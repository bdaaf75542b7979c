/**
 * tools/healthprobe, the image's HEALTHCHECK (no second Node process every
 * interval), against regate's real admin server on loopback: ready → 0, not
 * ready → 1, nothing listening → 1, a non-HTTP answer → 1, /healthz → 0.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import type { Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createAdminServer } from '../../../src/observe/admin.ts';
import { createMetrics } from '../../../src/observe/metrics.ts';
import { buildGoTool } from '../../helpers/go-tool.ts';

/** Raw TCP servers whose sockets are all destroyed on close (a close never waits for a peer). */
const sockets = new Set<Socket>();
function createTcpServer(onSocket: (s: Socket) => void = () => {}): TcpServer {
  return createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onSocket(socket);
  });
}

/** Run the probe; resolves with its exit code and stderr. */
function run(binary: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { env: { PATH: process.env.PATH ?? '', ...env } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('healthprobe (tools/healthprobe) against the admin server', { timeout: 300_000 }, () => {
  let binary = '';
  let admin: Server;
  let garbage: TcpServer;
  let base = '';
  let garbageUrl = '';
  let ready = true;

  before(async () => {
    binary = buildGoTool('healthprobe');
    const metrics = createMetrics({ routeIds: [], bundle: { name: 'regate', revision: 'r1' }, defaultMetrics: false });
    admin = createAdminServer({ registry: metrics.registry, ready: () => ({ ready, checks: { policy: ready } }) });
    await new Promise<void>((ok) => admin.listen(0, '127.0.0.1', ok));
    base = `http://127.0.0.1:${(admin.address() as AddressInfo).port}`;
    garbage = createTcpServer((socket) => socket.end('SSH-2.0-OpenSSH_9.2\r\n'));
    await new Promise<void>((ok) => garbage.listen(0, '127.0.0.1', ok));
    garbageUrl = `http://127.0.0.1:${(garbage.address() as AddressInfo).port}/readyz`;
  });
  after(async () => {
    admin.closeAllConnections();
    await new Promise<void>((ok) => admin.close(() => ok()));
    for (const s of sockets) s.destroy();
    await new Promise<void>((ok) => garbage.close(() => ok()));
  });

  it('exits 0 while /readyz is 200', async () => {
    ready = true;
    const r = await run(binary, ['-url', `${base}/readyz`]);
    assert.equal(r.code, 0, r.stderr);
  });

  it('exits 1 while /readyz is 503, and says why', async () => {
    ready = false;
    const r = await run(binary, ['-url', `${base}/readyz`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /answered 503/);
    // Liveness is independent of readiness.
    assert.equal((await run(binary, ['-url', `${base}/healthz`])).code, 0);
    ready = true;
  });

  it('takes the URL from REGATE_HEALTH_URL', async () => {
    ready = true;
    assert.equal((await run(binary, [], { REGATE_HEALTH_URL: `${base}/readyz` })).code, 0);
    assert.equal((await run(binary, ['-q'], { REGATE_HEALTH_URL: `${base}/nope` })).code, 1, '404 is unhealthy');
  });

  it('exits 1 when nothing listens, when the answer is not HTTP, and for a URL it cannot use', async () => {
    const closed = createTcpServer();
    await new Promise<void>((ok) => closed.listen(0, '127.0.0.1', ok));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((ok) => closed.close(() => ok()));
    assert.equal((await run(binary, ['-url', `http://127.0.0.1:${port}/readyz`])).code, 1);
    const g = await run(binary, ['-url', garbageUrl]);
    assert.equal(g.code, 1);
    assert.match(g.stderr, /not an HTTP\/1\.x status line/);
    assert.equal((await run(binary, ['-url', 'https://127.0.0.1:1/readyz'])).code, 1);
  });

  it('gives up within its timeout on a server that never answers', async () => {
    const silent = createTcpServer(() => {});
    await new Promise<void>((ok) => silent.listen(0, '127.0.0.1', ok));
    try {
      const r = await run(binary, ['-timeout', '300ms', '-url', `http://127.0.0.1:${(silent.address() as AddressInfo).port}/readyz`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /timeout/);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((ok) => silent.close(() => ok()));
    }
  });
});
