/**
 * Real nginx and Caddy (Debian packages; scripts/install-tools.sh installs
 * them) started on loopback with generated configs, for the authz front-end
 * tests: each serves on 127.0.0.1:<free port>, everything it writes lives in
 * a temp directory, and `stop()` ends exactly the process it started.
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';

export { freePort };

export interface FrontProxy {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** What the proxy wrote to its error log / stderr so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

/** The binary's path, or a clear failure: these tests need the real proxy. */
export function requireBinary(name: string): string {
  for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/bin', '/usr/local/sbin']) {
    const p = join(dir, name);
    if (spawnSync(p, ['-v'], { stdio: 'ignore' }).error === undefined) return p;
  }
  throw new Error(`${name} is not installed: run scripts/install-tools.sh (as root it installs nginx and caddy from Debian packages)`);
}

/** Wait (bounded) until something accepts TCP connections on the port. */
async function waitForPort(port: number, child: ChildProcess, log: () => string, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}:\n${log()}`);
    const open = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(true));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${port} within 20 s:\n${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function stopper(child: ChildProcess): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };
}

/**
 * nginx in the foreground (`daemon off`, one worker), its pid file, logs and
 * temp paths in a fresh directory. `server` is the body of the `server {}`
 * block; `listen` is added.
 */
export async function startNginx(server: (port: number) => string): Promise<FrontProxy> {
  const bin = requireBinary('nginx');
  const dir = mkdtempSync(join(tmpdir(), 'regate-nginx-'));
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, d));
  const port = await freePort();
  const root = process.getuid?.() === 0;
  const conf = `
${root ? 'user root;' : ''}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 128; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
${server(port)}
  }
}
`;
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  const child = spawn(bin, ['-p', dir, '-c', file, '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const log = (): string => {
    let err = '';
    try {
      err = readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      // not written yet
    }
    return `${out}${err}\n--- nginx.conf\n${conf}`;
  };
  await waitForPort(port, child, log, 'nginx');
  return { url: `http://127.0.0.1:${port}`, port, log, stop: stopper(child) };
}

/**
 * Caddy (`caddy run`) with a generated Caddyfile: admin endpoint off, no
 * automatic HTTPS, its data and config directories in a fresh directory.
 * `site` is the body of the `http://127.0.0.1:<port>` site block.
 */
export async function startCaddy(site: (port: number) => string): Promise<FrontProxy> {
  const bin = requireBinary('caddy');
  const dir = mkdtempSync(join(tmpdir(), 'regate-caddy-'));
  const port = await freePort();
  const caddyfile = `{
	admin off
	auto_https off
}

http://127.0.0.1:${port} {
${site(port)}
}
`;
  const file = join(dir, 'Caddyfile');
  writeFileSync(file, caddyfile);
  const child = spawn(bin, ['run', '--config', file, '--adapter', 'caddyfile'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') },
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const log = (): string => `${out}\n--- Caddyfile\n${caddyfile}`;
  await waitForPort(port, child, log, 'caddy');
  return { url: `http://127.0.0.1:${port}`, port, log, stop: stopper(child) };
}
