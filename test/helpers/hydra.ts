/**
 * A real Ory Hydra v2.3.0 (built into .tools/bin/hydra by scripts/install-tools.sh
 * from tools/hydra/go.mod) running `hydra serve all --dev` with the in-memory
 * sqlite database (DSN=memory): its public port (OIDC discovery, JWKS, token,
 * revocation) and admin port (clients, introspection) on 127.0.0.1 ports chosen
 * free for this test. Access tokens are JWTs by default; a client created with
 * `access_token_strategy: 'opaque'` gets opaque `ory_at_…` tokens instead
 * (Hydra v2's per-client strategy).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './regate-process.ts';
import { freePort } from './ports.ts';
import { waitUntilReady, watchChild } from './tool-process.ts';

export const hydraBin = join(repoRoot, '.tools', 'bin', 'hydra');

export interface HydraClient {
  readonly client_id: string;
  readonly client_secret: string;
}

export interface HydraClientOptions {
  readonly scope: string;
  readonly audience: readonly string[];
  readonly access_token_strategy?: 'jwt' | 'opaque';
  /** Seconds; Hydra's default is 1 h. */
  readonly access_token_lifespan_s?: number;
}

export interface Hydra {
  /** The issuer (`URLS_SELF_ISSUER`, no trailing slash): also the `iss` of its tokens. */
  readonly issuer: string;
  readonly publicUrl: string;
  readonly adminUrl: string;
  /** `/admin/oauth2/introspect` on the admin port (RFC 7662; Hydra asks no client authentication there). */
  readonly introspectionUrl: string;
  createClient(id: string, options: HydraClientOptions): Promise<HydraClient>;
  /** client_credentials grant at /oauth2/token. */
  token(client: HydraClient, scope: string, audience?: string): Promise<string>;
  /** RFC 7009 revocation at /oauth2/revoke. */
  revoke(client: HydraClient, token: string): Promise<void>;
  stop(): Promise<void>;
}

const basic = (c: HydraClient): string => `Basic ${Buffer.from(`${encodeURIComponent(c.client_id)}:${encodeURIComponent(c.client_secret)}`).toString('base64')}`;

export async function startHydra(): Promise<Hydra> {
  if (!existsSync(hydraBin)) throw new Error(`${hydraBin} is missing: run scripts/install-tools.sh (it builds Ory Hydra with go and cgo)`);
  const [publicPort, adminPort] = [await freePort(), await freePort()];
  const issuer = `http://127.0.0.1:${publicPort}`;
  const dir = mkdtempSync(join(tmpdir(), 'regate-hydra-'));
  const child: ChildProcess = spawn(hydraBin, ['serve', 'all', '--dev'], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir,
      DSN: 'memory',
      // Encrypts the signing keys at rest (here: in memory); any 32+ characters.
      SECRETS_SYSTEM: 'regate-test-system-secret-not-for-production',
      URLS_SELF_ISSUER: issuer,
      SERVE_PUBLIC_HOST: '127.0.0.1',
      SERVE_PUBLIC_PORT: String(publicPort),
      SERVE_ADMIN_HOST: '127.0.0.1',
      SERVE_ADMIN_PORT: String(adminPort),
      STRATEGIES_ACCESS_TOKEN: 'jwt',
      LOG_LEVEL: 'warn',
      // No phone-home from a test run.
      SQA_OPT_OUT: 'true',
    },
  });
  const { stderr, exited } = watchChild(child);
  const publicUrl = issuer;
  const adminUrl = `http://127.0.0.1:${adminPort}`;

  // Ready when the admin API says so and discovery answers (it creates the signing keys on first use).
  await waitUntilReady(child, 'hydra', stderr, async () => {
    const [admin, pub] = await Promise.all([fetch(`${adminUrl}/health/ready`), fetch(`${publicUrl}/.well-known/openid-configuration`)]);
    await Promise.all([admin.arrayBuffer(), pub.arrayBuffer()]);
    return admin.ok && pub.ok;
  });

  return {
    issuer,
    publicUrl,
    adminUrl,
    introspectionUrl: `${adminUrl}/admin/oauth2/introspect`,
    async createClient(id, options) {
      const client_secret = `${id}-secret-0123456789abcdef`;
      const res = await fetch(`${adminUrl}/admin/clients`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          client_id: id,
          client_secret,
          grant_types: ['client_credentials'],
          token_endpoint_auth_method: 'client_secret_basic',
          scope: options.scope,
          audience: options.audience,
          ...(options.access_token_strategy !== undefined ? { access_token_strategy: options.access_token_strategy } : {}),
          ...(options.access_token_lifespan_s !== undefined ? { client_credentials_grant_access_token_lifespan: `${options.access_token_lifespan_s}s` } : {}),
        }),
      });
      const text = await res.text();
      if (res.status !== 201) throw new Error(`hydra refused client ${id}: ${res.status} ${text}`);
      return { client_id: id, client_secret };
    },
    async token(client, scope, audience) {
      const form = new URLSearchParams({ grant_type: 'client_credentials', scope });
      if (audience !== undefined) form.set('audience', audience);
      const res = await fetch(`${publicUrl}/oauth2/token`, {
        method: 'POST',
        headers: { authorization: basic(client), 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
      });
      const body = (await res.json()) as { access_token?: string };
      if (res.status !== 200 || typeof body.access_token !== 'string') throw new Error(`hydra refused a token: ${res.status} ${JSON.stringify(body)}`);
      return body.access_token;
    },
    async revoke(client, token) {
      const res = await fetch(`${publicUrl}/oauth2/revoke`, {
        method: 'POST',
        headers: { authorization: basic(client), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
      });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`hydra refused the revocation: ${res.status}`);
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
