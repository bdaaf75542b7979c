/** Loopback ports for real servers that cannot be told to listen on port 0 and report it (nginx, Caddy, Hydra, Jaeger). */
import { createServer } from 'node:net';

/** A port free right now on 127.0.0.1: bound, then released. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
