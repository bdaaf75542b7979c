/**
 * Tunnel: a relayed WebSocket connection between two real loopback TCP
 * connections. Asserts on the bytes each far end received.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { Tunnel, type TunnelLimits } from '../../../src/upstream/tunnel.ts';
import { closeFrame } from '../../../src/upstream/websocket-frames.ts';

/** A connected pair of sockets: [the far end a test drives, the near end the tunnel holds]. */
async function pair(): Promise<[Socket, Socket]> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const far = connect((server.address() as { port: number }).port, '127.0.0.1');
  const [near] = await accepted;
  await once(far, 'connect');
  server.close();
  near.pause();
  return [far, near];
}

/** Everything `socket` receives until the other side ends it. */
function collect(socket: Socket): { bytes: () => Buffer; ended: Promise<void> } {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {});
  const ended = new Promise<void>((resolve) => {
    socket.once('end', () => resolve());
    socket.once('close', () => resolve());
  });
  return { bytes: () => Buffer.concat(chunks), ended };
}

async function setup(limits: TunnelLimits = { idleTimeoutMs: 60_000, maxLifetimeMs: 60_000 }) {
  const [client, clientConn] = await pair();
  const [upstream, upstreamConn] = await pair();
  const seen = { toUpstream: 0, toClient: 0 };
  const tunnel = new Tunnel(clientConn, upstreamConn, limits, { toUpstream: (n) => (seen.toUpstream += n), toClient: (n) => (seen.toClient += n) });
  return { client, upstream, tunnel, seen, atClient: collect(client), atUpstream: collect(upstream) };
}

async function until(pred: () => boolean): Promise<void> {
  while (!pred()) await new Promise((r) => setTimeout(r, 5));
}

describe('Tunnel', () => {
  it('relays both ways, counts the bytes, and ends the other side when one end closes', async () => {
    const t = await setup();
    t.client.write('from the client');
    t.upstream.write(Buffer.from([0x82, 0x03, 1, 2, 3]));
    await until(() => t.atUpstream.bytes().length === 15 && t.atClient.bytes().length === 5);
    assert.equal(t.atUpstream.bytes().toString(), 'from the client');
    assert.deepEqual([...t.atClient.bytes()], [0x82, 0x03, 1, 2, 3]);
    t.client.end();
    await t.atUpstream.ended;
    const r = await t.tunnel.closed;
    assert.equal(r.reason, 'client_closed');
    assert.equal(r.bytesToUpstream, 15);
    assert.equal(r.bytesToClient, 5);
    assert.deepEqual(t.seen, { toUpstream: 15, toClient: 5 });
    t.upstream.destroy();
  });

  it('closes at a frame boundary with Close 1001 to both ends: unmasked to the client, masked to the upstream', async () => {
    const t = await setup();
    t.tunnel.close('shutdown');
    await Promise.all([t.atClient.ended, t.atUpstream.ended]);
    assert.deepEqual(t.atClient.bytes(), closeFrame(1001, 'shutting down', false));
    const up = t.atUpstream.bytes();
    assert.equal(up[0], 0x88);
    assert.equal(up[1], 0x80 | 15);
    const payload = Buffer.from(up.subarray(6).map((b, i) => b ^ up[2 + (i & 3)]!));
    assert.equal(payload.readUInt16BE(0), 1001);
    assert.equal(payload.subarray(2).toString(), 'shutting down');
    assert.equal((await t.tunnel.closed).reason, 'shutdown');
    t.client.destroy();
    t.upstream.destroy();
  });

  it('never writes a Close frame into a frame half relayed: that end just sees the connection end', async () => {
    const t = await setup();
    // A 100-byte binary frame from the upstream, of which only 40 bytes have been relayed.
    const head = Buffer.from([0x82, 100]);
    t.upstream.write(Buffer.concat([head, Buffer.alloc(38, 7)]));
    await until(() => t.atClient.bytes().length === 40);
    t.tunnel.close('shutdown');
    await t.atClient.ended;
    assert.equal(t.atClient.bytes().length, 40, 'nothing after the partial frame');
    await t.atUpstream.ended;
    assert.equal(t.atUpstream.bytes()[0], 0x88, 'the other direction was at a boundary: it got its Close');
    t.client.destroy();
    t.upstream.destroy();
  });

  it('closes an idle connection (idle_timeout), and a busy one at its lifetime (max_lifetime)', async () => {
    const idle = await setup({ idleTimeoutMs: 100, maxLifetimeMs: 60_000 });
    const r = await idle.tunnel.closed;
    assert.equal(r.reason, 'idle_timeout');
    assert.deepEqual(idle.atClient.bytes(), closeFrame(1001, 'idle timeout', false));
    idle.client.destroy();
    idle.upstream.destroy();

    const busy = await setup({ idleTimeoutMs: 100, maxLifetimeMs: 400 });
    const timer = setInterval(() => busy.client.writable && busy.client.write(Buffer.from([0x89, 0x80, 0, 0, 0, 0])), 20);
    const b = await busy.tunnel.closed;
    clearInterval(timer);
    assert.equal(b.reason, 'max_lifetime');
    assert.ok(b.bytesToUpstream > 0);
    busy.client.destroy();
    busy.upstream.destroy();
  });

  it('a reset on one end destroys the other (upstream_reset)', async () => {
    const t = await setup();
    t.upstream.resetAndDestroy();
    await t.atClient.ended;
    assert.equal((await t.tunnel.closed).reason, 'upstream_reset');
    t.client.destroy();
  });
});
