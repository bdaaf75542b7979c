/**
 * Cross-field checks of `broker` and `routes[].upstream_token` (src/broker/):
 * one active signing key, TTLs in order, no route shadowed by a broker path,
 * minted audiences among `broker.audiences`. Called by `crossCheck`.
 */

import { DEFAULTS } from './defaults.ts';

type Obj = Record<string, unknown>;
type Add = (keyPath: string, problem: string, at?: 'key' | 'value') => void;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Paths the broker answers before routing (besides `broker.path`). */
export const BROKER_WELL_KNOWN_PATHS: readonly string[] = ['/.well-known/jwks.json', '/.well-known/oauth-authorization-server'];

export function checkBroker(root: Obj, add: Add): void {
  const broker = isObj(root.broker) ? root.broker : undefined;
  const routes = asList(root.routes);
  if (broker === undefined) {
    routes.forEach((r, i) => {
      if (isObj(r) && r.upstream_token !== undefined) add(`/routes/${i}/upstream_token`, 'needs broker: the minted token is signed by the broker\'s active key as broker.issuer', 'key');
    });
    return;
  }
  const keys = asList(broker.signing_keys);
  const active = keys.filter((k) => isObj(k) && k.use === 'active').length;
  if (keys.length > 0 && active !== 1) add('/broker/signing_keys', `exactly one signing key must be use: active (found ${active})`);
  const files = new Map<string, number>();
  keys.forEach((k, i) => {
    if (!isObj(k) || typeof k.file !== 'string') return;
    const first = files.get(k.file);
    if (first !== undefined) add(`/broker/signing_keys/${i}/file`, `the same key file is also listed at /broker/signing_keys/${first}`);
    else files.set(k.file, i);
  });
  const maxTtl = typeof broker.max_ttl_s === 'number' ? broker.max_ttl_s : DEFAULTS.broker.max_ttl_s;
  const defTtl = typeof broker.default_ttl_s === 'number' ? broker.default_ttl_s : DEFAULTS.broker.default_ttl_s;
  if (defTtl > maxTtl) add(`/broker/${broker.default_ttl_s !== undefined ? 'default_ttl_s' : 'max_ttl_s'}`, `default_ttl_s (${defTtl}) is greater than max_ttl_s (${maxTtl})`);
  if (typeof broker.issuer === 'string') {
    try {
      new URL(broker.issuer);
    } catch {
      add('/broker/issuer', `not a URL: ${JSON.stringify(broker.issuer)}`);
    }
  }
  const clientIds = new Map<string, number>();
  asList(broker.clients).forEach((c, i) => {
    if (!isObj(c) || typeof c.id !== 'string') return;
    const first = clientIds.get(c.id);
    if (first !== undefined) add(`/broker/clients/${i}/id`, `duplicate client id "${c.id}" (also /broker/clients/${first})`);
    else clientIds.set(c.id, i);
  });
  const methods = Array.isArray(broker.client_auth) ? broker.client_auth : DEFAULTS.broker.client_auth;
  if (clientIds.size > 0 && !methods.includes('private_key_jwt')) add('/broker/clients', 'clients authenticate with private_key_jwt, which broker.client_auth does not list', 'key');
  const served = new Set([typeof broker.path === 'string' ? broker.path : DEFAULTS.broker.path, ...BROKER_WELL_KNOWN_PATHS]);
  const audiences = new Set(asList(broker.audiences));
  routes.forEach((r, i) => {
    if (!isObj(r)) return;
    const path = isObj(r.match) ? r.match.path : undefined;
    if (typeof path === 'string' && served.has(path)) add(`/routes/${i}/match/path`, `${path} is served by the broker before routing: this route would never see a request (move it or change broker.path)`);
    const ut = r.upstream_token;
    if (!isObj(ut)) return;
    if (typeof ut.audience === 'string' && !audiences.has(ut.audience)) add(`/routes/${i}/upstream_token/audience`, `"${ut.audience}" is not one of broker.audiences (${[...audiences].map((a) => JSON.stringify(a)).join(', ')})`);
    if (typeof ut.ttl_s === 'number' && ut.ttl_s > maxTtl) add(`/routes/${i}/upstream_token/ttl_s`, `${ut.ttl_s} is greater than broker.max_ttl_s (${maxTtl})`);
    if (r.auth !== undefined && r.auth !== 'required') add(`/routes/${i}/upstream_token`, `needs auth: required (this route's auth is ${JSON.stringify(r.auth)}): the minted token is the caller's, narrowed`, 'key');
    if (isObj(root.listen) && root.listen.authz !== undefined) add(`/routes/${i}/upstream_token`, 'is not applied on the authz listener (listen.authz): the proxy in front would forward the caller\'s own token; serve upstream_token routes through regate\'s proxy only', 'key');
    if (r.forward_authorization === true) add(`/routes/${i}/forward_authorization`, 'cannot be combined with upstream_token: the upstream receives the minted token, never the caller\'s', 'key');
    // The minted token is the upstream's Authorization: an injected credential on that header would replace it.
    const upstream = isObj(root.upstreams) && typeof r.upstream === 'string' ? root.upstreams[r.upstream] : undefined;
    const declared = isObj(upstream) && isObj(upstream.credentials) ? upstream.credentials : {};
    asList(r.credentials).forEach((name, j) => {
      const c = typeof name === 'string' ? declared[name] : undefined;
      if (isObj(c) && typeof c.header === 'string' && c.header.toLowerCase() === 'authorization') {
        add(`/routes/${i}/credentials/${j}`, `credential "${name}" sets Authorization, which upstream_token sets to the minted token: use one or the other on this route`);
      }
    });
  });
}
