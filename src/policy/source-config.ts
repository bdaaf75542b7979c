/**
 * Cross-field checks of `policy.service` and `policy.signing` that JSON Schema
 * cannot express, run by the config loader (src/config/load.ts) after the
 * schema. Each check guards the types it reads: it also runs when the schema
 * already failed, so that one run reports everything.
 */

import { DEFAULTS } from '../config/defaults.ts';
import { compileGlob } from './signatures.ts';

type Add = (keyPath: string, problem: string, at?: 'key' | 'value') => void;
type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Request headers regate sets itself on a bundle request, or that frame it:
 * a configured value would be ignored, or would break the request.
 */
const RESERVED_HEADERS: Readonly<Record<string, string>> = {
  'if-none-match': 'carries the ETag of the active bundle (set by regate)',
  host: 'is set from policy.service.url',
  'content-length': 'frames the request',
  'transfer-encoding': 'frames the request',
  connection: 'is a hop-by-hop header',
  'keep-alive': 'is a hop-by-hop header',
  te: 'is a hop-by-hop header',
  upgrade: 'is a hop-by-hop header',
  'accept-encoding': 'would let the server compress the .tar.gz twice',
  accept: 'is set by regate (OPA bundle media types)',
  prefer: 'is set by regate (modes=snapshot: delta bundles are not supported)',
};

/** `policy` is the raw `policy` mapping of the config file. */
export function checkBundleSourceConfig(policy: Obj, add: Add): void {
  const service = policy.service;
  if (isObj(service)) {
    const url = service.url;
    if (typeof url === 'string' && /^https?:\/\//.test(url)) {
      try {
        const parsed = new URL(url);
        // Credentials in a URL end up in logs and error messages.
        if (parsed.username || parsed.password) add('/policy/service/url', 'must not contain credentials (user:password@): send them in policy.service.headers');
      } catch {
        add('/policy/service/url', `not a valid URL: ${JSON.stringify(url)}`);
      }
    }
    const polling = isObj(service.polling) ? service.polling : {};
    const min = polling.min_delay_seconds ?? DEFAULTS.policy.service.polling.min_delay_seconds;
    const max = polling.max_delay_seconds ?? DEFAULTS.policy.service.polling.max_delay_seconds;
    if (typeof min === 'number' && typeof max === 'number' && min > max) {
      const at = polling.min_delay_seconds !== undefined ? 'min_delay_seconds' : 'max_delay_seconds';
      add(`/policy/service/polling/${at}`, `min_delay_seconds (${min}) is greater than max_delay_seconds (${max})${polling.max_delay_seconds === undefined ? ', whose default is 120' : ''}`);
    }
    const seen = new Map<string, string>();
    for (const name of Object.keys(isObj(service.headers) ? service.headers : {})) {
      const at = `/policy/service/headers/${name.replaceAll('~', '~0').replaceAll('/', '~1')}`;
      const lower = name.toLowerCase();
      const reserved = RESERVED_HEADERS[lower];
      if (reserved !== undefined) add(at, `header ${name} ${reserved}`, 'key');
      const other = seen.get(lower);
      if (other !== undefined) add(at, `header ${name} is also set as ${other} (header names are case-insensitive)`, 'key');
      else seen.set(lower, name);
    }
  }

  const signing = policy.signing;
  if (isObj(signing) && Array.isArray(signing.exclude_files)) {
    signing.exclude_files.forEach((pattern, i) => {
      if (typeof pattern !== 'string' || pattern === '') return; // the schema reports it
      try {
        compileGlob(pattern);
      } catch (err) {
        add(`/policy/signing/exclude_files/${i}`, (err as Error).message);
      }
      if (pattern.startsWith('/')) add(`/policy/signing/exclude_files/${i}`, `patterns match paths without a leading slash (as OPA's): write ${JSON.stringify(pattern.replace(/^\/+/, ''))}`);
    });
  }
}
