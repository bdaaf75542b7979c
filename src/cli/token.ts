import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { loadConfig } from '../config/load.ts';
import { mintToken } from '../authn/mint.ts';
import { parseRfc3339Ns } from '../clock.ts';
import { parse, reportConfigErrors, UsageError } from './common.ts';

const USAGE = `usage: regate token --config FILE [options]

Mints a token signed with a private JWK: an example's published development key, or
your own (regate keys generate --alg ES256 --kid KID).
Roles, groups, scopes and tenant are placed where the issuer's claim mapping reads them.

  --config FILE      the regate config whose issuer the token is for (required)
  --issuer ID        issuer id in the config (default: the first)
  --key FILE         private JWK to sign with (default: dev-signing-key.jwk.json beside the issuer's jwks_file)
  --sub SUB          subject (default: dev-user)
  --role R           a role (repeatable)
  --group G          a group (repeatable)
  --scope S          a scope (repeatable)
  --tenant T         tenant
  --aud AUD          audience (default: the issuer's first audience)
  --ttl DURATION     lifetime: 90s, 15m, 2h, 30d (default 15m)
  --time RFC3339     issue the token at this instant (iat; exp = time + ttl) instead of now,
                     e.g. for regate eval --time at an instant before now
  --claim K=JSON     any other claim, value as JSON or a plain string (repeatable)`;

/** `regate token`: development tokens only — it signs with whatever key file it is given. */
export async function runToken(argv: string[]): Promise<number> {
  try {
    const { values } = parse(
      argv,
      {
        config: { type: 'string', short: 'c' },
        issuer: { type: 'string' },
        key: { type: 'string' },
        sub: { type: 'string' },
        role: { type: 'string', multiple: true },
        group: { type: 'string', multiple: true },
        scope: { type: 'string', multiple: true },
        tenant: { type: 'string' },
        aud: { type: 'string' },
        ttl: { type: 'string' },
        time: { type: 'string' },
        claim: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
      USAGE,
    );
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (!values.config) throw new UsageError(`--config is required\n\n${USAGE}`);
    const config = await loadConfig(values.config);
    const issuer = values.issuer ? config.issuers.find((i) => i.id === values.issuer) : config.issuers[0];
    if (!issuer) throw new UsageError(`no issuer "${values.issuer ?? ''}" in ${config.source}`);
    const keyFile = values.key ?? (issuer.jwks_file ? join(dirname(issuer.jwks_file), 'dev-signing-key.jwk.json') : undefined);
    if (!keyFile) throw new UsageError('--key is required for an issuer with a remote jwks_url');
    const privateJwk = JSON.parse(await readFile(keyFile, 'utf8')) as Record<string, unknown>;

    const claims: Record<string, unknown> = {};
    for (const c of values.claim ?? []) {
      const eq = c.indexOf('=');
      if (eq <= 0) throw new UsageError(`--claim expects KEY=VALUE, got "${c}"`);
      const raw = c.slice(eq + 1);
      let v: unknown = raw;
      try {
        v = JSON.parse(raw);
      } catch {
        // a plain string
      }
      setAt(claims, c.slice(0, eq), v);
    }
    if (values.role) setAt(claims, issuer.claims.roles, values.role);
    if (values.group) setAt(claims, issuer.claims.groups, values.group);
    // RFC 8693 §4.2: `scope` is a space-separated string; other mappings get an array.
    if (values.scope) setAt(claims, issuer.claims.scopes, issuer.claims.scopes === 'scope' ? values.scope.join(' ') : values.scope);
    if (values.tenant) setAt(claims, issuer.claims.tenant, values.tenant);

    const token = await mintToken({
      privateJwk,
      alg: typeof privateJwk.alg === 'string' ? privateJwk.alg : (issuer.algorithms[0] ?? 'ES256'),
      kid: typeof privateJwk.kid === 'string' ? privateJwk.kid : undefined,
      issuer: issuer.issuer,
      audience: values.aud ?? issuer.audiences[0] ?? '',
      sub: values.sub ?? 'dev-user',
      claims,
      ttlSeconds: parseDuration(values.ttl ?? '15m'),
      ...(values.time !== undefined ? { now: issueTime(values.time) } : {}),
    });
    process.stdout.write(`${token}\n`);
    return 0;
  } catch (err) {
    return reportConfigErrors(err);
  }
}

function setAt(target: Record<string, unknown>, dotPath: string, value: unknown): void {
  const keys = dotPath.split('.');
  let node = target;
  for (const k of keys.slice(0, -1)) {
    const next = node[k];
    node = (next && typeof next === 'object' ? next : (node[k] = {})) as Record<string, unknown>;
  }
  node[keys[keys.length - 1] as string] = value;
}

/** `--time`: an RFC 3339 instant → whole seconds since the epoch. */
function issueTime(time: string): number {
  let ns: bigint;
  try {
    ns = parseRfc3339Ns(time);
  } catch {
    throw new UsageError(`--time must be an RFC 3339 instant such as 2026-03-09T09:00:00-07:00, got ${JSON.stringify(time)}`);
  }
  return Number(ns / 1_000_000_000n);
}

function parseDuration(s: string): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(s);
  if (!m) throw new UsageError(`--ttl expects e.g. 90s, 15m, 2h, 30d, got "${s}"`);
  const n = Number(m[1]);
  return n * ({ s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd']);
}
