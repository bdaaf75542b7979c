/**
 * `regate exchange`: a client convenience for the broker's token endpoint
 * (RFC 8693). Posts the form and prints the issued `access_token` — what a
 * workflow step runs before calling its API. Equivalent to curl with `-d`
 * parameters (README "Token exchange broker").
 */

import { readFile } from 'node:fs/promises';
import { request } from '../upstream/undici.ts';
import { parse, UsageError } from './common.ts';

const JWT = 'urn:ietf:params:oauth:token-type:jwt';
const USAGE = `usage: regate exchange --url URL --subject-token TOKEN [options]

Exchanges a token at a regate broker (RFC 8693) and prints the issued access token
(or, with --json, the whole response). Exit 0 granted, 1 refused (the OAuth error on stderr), 2 usage.

  --url URL                 the token endpoint, e.g. http://127.0.0.1:8080/oauth2/token (required)
  --subject-token TOKEN     the token to exchange; @FILE reads it from a file (required)
  --audience AUD            target audience (repeatable)
  --scope S                 a scope (repeatable; sent space-separated)
  --resource URI            target resource (repeatable)
  --actor-token TOKEN       the actor's token (delegation); @FILE reads it from a file
  --client-assertion JWT    a private_key_jwt client assertion; @FILE reads it from a file
  --authorization-details J RFC 9396 authorization_details (a JSON array)
  --json                    print the whole JSON response`;

async function value(v: string | undefined): Promise<string | undefined> {
  if (v === undefined || !v.startsWith('@')) return v;
  return (await readFile(v.slice(1), 'utf8')).trim();
}

export async function runExchange(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parse(
      argv,
      {
        url: { type: 'string' },
        'subject-token': { type: 'string' },
        audience: { type: 'string', multiple: true },
        scope: { type: 'string', multiple: true },
        resource: { type: 'string', multiple: true },
        'actor-token': { type: 'string' },
        'client-assertion': { type: 'string' },
        'authorization-details': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      USAGE,
    ));
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (!values.url || !values['subject-token']) throw new UsageError(`--url and --subject-token are required\n\n${USAGE}`);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return 2;
  }
  const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: (await value(values['subject-token']))!, subject_token_type: JWT });
  for (const a of values.audience ?? []) form.append('audience', a);
  for (const r of values.resource ?? []) form.append('resource', r);
  if (values.scope?.length) form.set('scope', values.scope.join(' '));
  const actor = await value(values['actor-token']);
  if (actor !== undefined) {
    form.set('actor_token', actor);
    form.set('actor_token_type', JWT);
  }
  const assertion = await value(values['client-assertion']);
  if (assertion !== undefined) {
    form.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    form.set('client_assertion', assertion);
  }
  if (values['authorization-details'] !== undefined) form.set('authorization_details', values['authorization-details']);
  let status: number;
  let text: string;
  try {
    const res = await request(values.url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    process.stderr.write(`regate exchange: ${values.url}: ${(err as Error).message}\n`);
    return 1;
  }
  if (status !== 200) {
    process.stderr.write(`${status} ${text}\n`);
    return 1;
  }
  process.stdout.write(values.json ? `${text}\n` : `${(JSON.parse(text) as { access_token: string }).access_token}\n`);
  return 0;
}
