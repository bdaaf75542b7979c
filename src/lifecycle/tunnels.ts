/**
 * Open WebSocket tunnels of the proxy listener, for the shutdown deadline.
 *
 * A tunnel is a request in flight for as long as it lasts (it holds its
 * runtime, like an SSE stream), so the drain waits for it until
 * `shutdown.grace_ms`. At that deadline, before the remaining sockets are
 * destroyed, {@link TunnelSet.closeAll} gives every tunnel its Close frames
 * (1001 going away) and a moment to flush them: clients learn the server is
 * going away instead of seeing a reset.
 */

import type { Tunnel } from '../upstream/tunnel.ts';

export class TunnelSet {
  readonly #open = new Set<Tunnel>();

  get size(): number {
    return this.#open.size;
  }

  /** Track `tunnel` until it is closed. */
  add(tunnel: Tunnel): void {
    this.#open.add(tunnel);
    void tunnel.closed.then(() => this.#open.delete(tunnel));
  }

  /** Close every open tunnel for `shutdown`; resolves once all are closed or `waitMs` passed. */
  async closeAll(waitMs: number): Promise<void> {
    if (this.#open.size === 0) return;
    const all = [...this.#open];
    for (const t of all) t.close('shutdown');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(all.map((t) => t.closed)), new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
  }
}
