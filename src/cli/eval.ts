import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { pino } from 'pino';
import { fixedClock, parseRfc3339Ns } from '../clock.ts';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/types.ts';
import { ConfigError, ConfigErrors } from '../errors.ts';
import { explain, type Explanation, type RequestDescription } from '../pipeline/explain.ts';
import { readBundle } from '../policy/bundle.ts';
import { createRuntime, type PolicyBundles } from '../runtime.ts';
import { parse, reportConfigErrors, UsageError } from './common.ts';

const USAGE = `usage: regate eval --config FILE --path P [options]

Runs one request description through regate's own routing, authentication,
resource lookup, input building and policy evaluation — offline: nothing
listens, nothing is forwarded, no decision log is written.

  --config FILE        the regate config (required)
  --method M           request method (default GET)
  --path P             request target, path and query: /v1/files/a.csv?x=1
  --header 'K: V'      a request header (repeatable); Host defaults to localhost
  --token JWT          a bearer token, verified for real with the configured issuers
  --claims JSON        claims taken as verified (NOT verified: e.g. input.token from a decision log)
  --claims-file FILE   the same, from a file
  --body JSON|@FILE    request body (adds Content-Type: application/json unless --header sets one)
  --time RFC3339       the instant to evaluate at (input.time and token expiry)
  --resource JSON      resource attributes instead of asking the catalog (e.g. input.resource from a decision log)
  --request FILE       all of the above as JSON: {method, path, headers, token | claims, body, time, resource, remote_addr}
  --bundle FILE        evaluate with this bundle instead of policy.bundle
  --format json|summary  json (default): the explanation on stdout and a summary line on stderr;
                         summary: only the summary line, on stdout

exit status: 0 allow, 3 deny (any refusal: 400/401/403/404/405/413/5xx), 1 bad config or request, 2 usage`;

/** Exit status of a deny: distinct from errors (1) and usage (2), so scripts can assert on it. */
export const EXIT_DENY = 3;

/** An unusable request description: exit 1 with the message. */
class RequestDescriptionError extends Error {}

/** `regate eval`: explain the decision for one request, offline. */
export async function runEval(argv: string[]): Promise<number> {
  let format: 'json' | 'summary' = 'json';
  try {
    const { values } = parse(
      argv,
      {
        config: { type: 'string', short: 'c' },
        method: { type: 'string', short: 'X' },
        path: { type: 'string' },
        header: { type: 'string', short: 'H', multiple: true },
        token: { type: 'string' },
        claims: { type: 'string' },
        'claims-file': { type: 'string' },
        body: { type: 'string' },
        time: { type: 'string' },
        resource: { type: 'string' },
        request: { type: 'string' },
        bundle: { type: 'string' },
        format: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      USAGE,
    );
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (!values.config) throw new UsageError(`--config is required\n\n${USAGE}`);
    if (values.format !== undefined && values.format !== 'json' && values.format !== 'summary') {
      throw new UsageError(`--format must be json or summary, got "${values.format}"`);
    }
    format = values.format ?? 'json';

    const file = values.request === undefined ? {} : await requestFile(values.request);
    const claimsText = values.claims ?? (values['claims-file'] !== undefined ? await readText(values['claims-file'], '--claims-file') : undefined);
    const description = describe(values, file, claimsText);
    const time = values.time ?? file.time;

    const config = await loadConfig(values.config);
    const rt = await createRuntime(config, await offlineBundles(config, values.bundle), {
      logger: pino({ level: 'silent' }),
      offline: true,
      ...(time !== undefined ? { clock: fixedClock(instant(time)) } : {}),
    });
    let explanation: Explanation;
    try {
      explanation = await explain(rt, description);
    } finally {
      await rt.close();
    }
    const line = summaryLine(explanation);
    if (format === 'json') {
      process.stdout.write(`${prettyJson(explanation)}\n`);
      process.stderr.write(`${line}\n`);
    } else {
      process.stdout.write(`${line}\n`);
    }
    return explanation.decision.allow ? 0 : EXIT_DENY;
  } catch (err) {
    if (err instanceof RequestDescriptionError) {
      process.stderr.write(`regate eval: ${err.message}\n`);
      return 1;
    }
    return reportConfigErrors(err);
  }
}

/** `ALLOW`, or `DENY 403: reason; reason` — marked when the identity was not verified. */
export function summaryLine(e: Explanation): string {
  const unverified = e.identity.source === 'claims' ? ' (claims unverified)' : '';
  if (e.decision.allow) return `ALLOW${e.route ? ` ${e.route.id}` : ''}${unverified}`;
  const why = e.decision.reasons.length > 0 ? e.decision.reasons.join('; ') : e.decision.reason;
  return `DENY ${e.decision.status}: ${why}${unverified}`;
}

/** The --request file: the same fields as the flags. */
interface RequestFile {
  method?: string;
  path?: string;
  headers?: Record<string, string | string[]> | string[];
  token?: string;
  claims?: Record<string, unknown>;
  body?: unknown;
  time?: string;
  resource?: Record<string, unknown>;
  remote_addr?: string;
}

const REQUEST_FILE_KEYS = ['method', 'path', 'headers', 'token', 'claims', 'body', 'time', 'resource', 'remote_addr'];

async function requestFile(path: string): Promise<RequestFile> {
  const value = jsonArg(await readText(path, '--request'), `--request ${path}`);
  if (!isObject(value)) throw new RequestDescriptionError(`--request ${path}: must be a JSON object`);
  const unknown = Object.keys(value).filter((k) => !REQUEST_FILE_KEYS.includes(k));
  if (unknown.length > 0) throw new RequestDescriptionError(`--request ${path}: unknown key(s) ${unknown.join(', ')} (allowed: ${REQUEST_FILE_KEYS.join(', ')})`);
  const r = value as RequestFile;
  for (const k of ['method', 'path', 'token', 'time', 'remote_addr'] as const) {
    if (r[k] !== undefined && typeof r[k] !== 'string') throw new RequestDescriptionError(`--request ${path}: "${k}" must be a string`);
  }
  for (const k of ['claims', 'resource'] as const) {
    if (r[k] !== undefined && !isObject(r[k])) throw new RequestDescriptionError(`--request ${path}: "${k}" must be a JSON object`);
  }
  return r;
}

type Flags = Partial<Record<'method' | 'path' | 'token' | 'body' | 'resource', string>> & { header?: string[] };

/** Flags win over the --request file. */
function describe(flags: Flags, file: RequestFile, claimsText: string | undefined): RequestDescription {
  const path = flags.path ?? file.path;
  if (path === undefined) throw new UsageError(`--path (or "path" in --request) is required\n\n${USAGE}`);
  const claims = claimsText !== undefined ? jsonArg(claimsText, '--claims') : file.claims;
  if (claims !== undefined && !isObject(claims)) throw new RequestDescriptionError('--claims must be a JSON object');
  const token = flags.token ?? file.token;
  if (claims !== undefined && token !== undefined) throw new RequestDescriptionError('give either a token or claims, not both');
  const resource = flags.resource !== undefined ? jsonArg(flags.resource, '--resource') : file.resource;
  if (resource !== undefined && !isObject(resource)) throw new RequestDescriptionError('--resource must be a JSON object');
  let body: Buffer | undefined;
  if (flags.body !== undefined) body = flags.body.startsWith('@') ? bodyFromFile(flags.body.slice(1)) : Buffer.from(flags.body, 'utf8');
  // In a --request file the body is a JSON value, sent as its JSON text.
  else if (file.body !== undefined) body = Buffer.from(JSON.stringify(file.body), 'utf8');
  const headers = [...fileHeaders(file.headers), ...(flags.header ?? []).map(headerArg)];
  return {
    method: flags.method ?? file.method ?? 'GET',
    path,
    headers,
    ...(token !== undefined ? { token } : {}),
    ...(claims !== undefined ? { claims: claims as Record<string, unknown> } : {}),
    ...(body !== undefined ? { body } : {}),
    ...(resource !== undefined ? { resource: resource as Record<string, unknown> } : {}),
    ...(file.remote_addr !== undefined ? { remoteAddr: file.remote_addr } : {}),
  };
}

/** `--body @file`: the file's bytes, exactly (read before anything runs). */
function bodyFromFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new RequestDescriptionError(`--body @${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message}`);
  }
}

function headerArg(h: string): [string, string] {
  const colon = h.indexOf(':');
  if (colon <= 0) throw new RequestDescriptionError(`--header expects 'Name: value', got ${JSON.stringify(h)}`);
  return [h.slice(0, colon).trim(), h.slice(colon + 1).trim()];
}

function fileHeaders(h: RequestFile['headers']): [string, string][] {
  if (h === undefined) return [];
  if (Array.isArray(h)) return h.map((x) => (typeof x === 'string' ? headerArg(x) : bad()));
  if (!isObject(h)) return bad();
  return Object.entries(h).flatMap(([name, v]) => (Array.isArray(v) ? v : [v]).map((x): [string, string] => (typeof x === 'string' ? [name, x] : bad())));
  function bad(): never {
    throw new RequestDescriptionError('"headers" in --request must be {"Name": "value" | ["value", ...]} or ["Name: value", ...]');
  }
}

function jsonArg(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new RequestDescriptionError(`${what}: not valid JSON: ${(err as Error).message}`);
  }
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new RequestDescriptionError(`${what} ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message}`);
  }
}

function instant(time: string): bigint {
  try {
    return parseRfc3339Ns(time);
  } catch {
    throw new RequestDescriptionError(`--time must be an RFC 3339 instant such as 2026-03-09T09:00:00-07:00, got ${JSON.stringify(time)}`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The bundles `serve` would enforce, read once from disk. A config that
 * fetches its bundle from a server (`policy.service`) needs `--bundle`:
 * eval does not contact bundle servers.
 */
async function offlineBundles(config: Config, override: string | undefined): Promise<PolicyBundles> {
  const path = override ?? config.policy.bundle;
  if (path === undefined) {
    throw new ConfigErrors([new ConfigError(config.source, '/policy', 'regate eval reads the bundle from a file: this config fetches it from a server (policy.service); pass --bundle FILE')]);
  }
  const active = await readBundle(path);
  const candidate = config.policy.candidate !== undefined ? await readBundle(config.policy.candidate.bundle) : undefined;
  return { active, ...(candidate !== undefined ? { candidate } : {}) };
}

/** JSON with 2-space indentation; integers beyond 2^53 (bigint) printed exactly. */
function prettyJson(value: unknown): string {
  const raw = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? raw(v.toString()) : v), 2);
}
