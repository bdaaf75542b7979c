/**
 * examples/workflow-steps end to end: three real upstreams (tickets database,
 * translation API, chat API) behind one real regate process running the
 * example's config and policy. Each step's token works at its own API only;
 * the chat step posts only to its workflow's channel (parsed JSON body).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertAllowed, assertDenied, exampleToken, startExample, type ExampleRig } from '../../helpers/examples.ts';
import { startUpstreamServer, type TestUpstream } from '../../helpers/upstream-server.ts';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { cliPath } from '../../helpers/regate-process.ts';

const NAME = 'workflow-steps';
const WORKFLOW = 'ticket-translation';
const TRANSLATION_KEY = readFileSync(new URL('../../../examples/workflow-steps/secrets/translation-api-key', import.meta.url), 'utf8').trim();

let db: TestUpstream;
let translator: TestUpstream;
let chat: TestUpstream;
let rig: ExampleRig;
const tokens: Record<'read' | 'translate' | 'notify', string> = { read: '', translate: '', notify: '' };

/** The three calls of the workflow, one per step. */
const CALLS = {
  read: { method: 'GET', path: '/v1/tickets/4711', body: undefined, audience: 'tickets-db' },
  translate: { method: 'POST', path: '/v2/translate', body: { text: ['Le imprimante est en feu'], target_lang: 'EN' }, audience: 'translate-api' },
  notify: { method: 'POST', path: '/api/chat.postMessage', body: { channel: 'C0SUPPORTFR', text: 'Ticket 4711: the printer is on fire' }, audience: 'chat-api' },
} as const;

const stepToken = (sub: string, aud: string | string[], scope: string, extra: Record<string, unknown> = {}) =>
  exampleToken(NAME, { sub: `${WORKFLOW}/${sub}`, aud, claims: { scope, workflow: WORKFLOW, ...extra } });

before(async () => {
  [db, translator, chat] = await Promise.all([startUpstreamServer(), startUpstreamServer(), startUpstreamServer()]);
  rig = await startExample(NAME, { upstreams: { 'tickets-db': db.url, translator: translator.url, chat: chat.url } });
  tokens.read = await stepToken('read', 'tickets-db', 'tickets.read');
  tokens.translate = await stepToken('translate', 'translate-api', 'translate');
  tokens.notify = await stepToken('notify', 'chat-api', 'chat.write');
});

after(async () => {
  await rig?.stop();
  await Promise.all([db?.close(), translator?.close(), chat?.close()]);
});

describe('workflow-steps: each step at its own API', () => {
  it('read: the tickets database', async () => {
    const before = db.requests.length;
    const { echo } = await assertAllowed(rig, () => rig.call('GET', '/v1/tickets/4711', tokens.read), {
      method: 'GET',
      path: '/v1/tickets/4711',
      reasons: ['a tickets-db token with scope tickets.read'],
    });
    assert.equal(echo.headers['x-workflow-step'], `${WORKFLOW}/read`);
    assert.equal(db.requests.length, before + 1);
  });

  it('translate: the external translation API, without identity headers', async () => {
    const before = translator.requests.length;
    const { echo } = await assertAllowed(rig, () => rig.call('POST', '/v2/translate', tokens.translate, CALLS.translate.body), {
      method: 'POST',
      path: '/v2/translate',
      reasons: ['a translate-api token with scope translate'],
      authorization: `DeepL-Auth-Key ${TRANSLATION_KEY}`,
    });
    assert.deepEqual(JSON.parse(echo.body), CALLS.translate.body);
    assert.equal(echo.headers['x-workflow-step'], undefined);
    // The API key regate holds replaces the step token: the translation API never sees the workflow's token.
    assert.equal(echo.headers.authorization, `DeepL-Auth-Key ${TRANSLATION_KEY}`);
    assert.equal(translator.requests.length, before + 1);
  });

  it('notify: the chat API, to the workflow\'s channel', async () => {
    const before = chat.requests.length;
    const { echo } = await assertAllowed(rig, () => rig.call('POST', '/api/chat.postMessage', tokens.notify, CALLS.notify.body), {
      method: 'POST',
      path: '/api/chat.postMessage',
      reasons: ['a chat-api token with scope chat.write'],
    });
    assert.deepEqual(JSON.parse(echo.body), CALLS.notify.body);
    assert.equal(chat.requests.length, before + 1);
  });
});

describe('workflow-steps: audience separation', () => {
  for (const step of ['read', 'translate', 'notify'] as const) {
    for (const [target, call] of Object.entries(CALLS)) {
      if (target === step) continue;
      it(`the ${step} step's token is refused at ${call.audience}`, async () => {
        await assertDenied(rig, [db, translator, chat], () => rig.call(call.method, call.path, tokens[step], call.body), [
          `this route needs a token for ${call.audience}, not ${CALLS[step].audience}`,
        ]);
      });
    }
  }

  it('a token with several audiences is refused everywhere', async () => {
    const wide = await stepToken('notify', ['tickets-db', 'chat-api'], 'tickets.read chat.write');
    for (const call of Object.values(CALLS)) {
      await assertDenied(rig, [db, translator, chat], () => rig.call(call.method, call.path, wide, call.body), [
        'a step token must name exactly one audience, not chat-api, tickets-db',
      ]);
    }
  });

  it('a token for an audience regate does not front: 401 invalid_audience', async () => {
    const seen = db.requests.length;
    const t = await stepToken('read', 'billing-db', 'tickets.read');
    const res = await rig.call('GET', '/v1/tickets/4711', t);
    assert.equal(res.status, 401);
    assert.equal(res.json().reason, 'invalid_audience');
    assert.equal(db.requests.length, seen);
  });

  it('the right audience without the step\'s scope', async () => {
    const t = await stepToken('read', 'tickets-db', 'tickets.list');
    await assertDenied(rig, [db, translator, chat], () => rig.call('GET', '/v1/tickets/4711', t), ['this route needs scope tickets.read']);
  });
});

describe('workflow-steps: the chat step posts only to its channel', () => {
  it('another channel', async () => {
    await assertDenied(rig, [db, translator, chat], () => rig.call('POST', '/api/chat.postMessage', tokens.notify, { channel: 'C0GENERAL', text: 'hi all' }), [
      'workflow ticket-translation may post only to channel C0SUPPORTFR',
    ]);
  });

  it('no channel, or a body the policy cannot read', async () => {
    const reasons = ['workflow ticket-translation may post only to channel C0SUPPORTFR'];
    await assertDenied(rig, [db, translator, chat], () => rig.call('POST', '/api/chat.postMessage', tokens.notify, { text: 'hi' }), reasons);
    await assertDenied(
      rig,
      [db, translator, chat],
      () => rig.call('POST', '/api/chat.postMessage', tokens.notify, 'channel=C0SUPPORTFR&text=hi', { 'content-type': 'application/x-www-form-urlencoded' }),
      reasons,
    );
  });

  it('a body naming the channel twice (judged on one, delivered with the other) is refused: 400 body_malformed, nothing forwarded', async () => {
    // JSON.parse keeps the last duplicate, some upstream parsers the first: regate refuses to guess.
    const seen = [db, translator, chat].map((u) => u.requests.length);
    for (const body of ['{"channel":"C0GENERAL","channel":"C0SUPPORTFR","text":"hi"}', '{"channel":"C0GENERAL","\\u0063hannel":"C0SUPPORTFR"}']) {
      const res = await rig.call('POST', '/api/chat.postMessage', tokens.notify, body);
      assert.equal(res.status, 400, body);
      assert.match(res.text, /"reason":"body_malformed"/, body);
    }
    assert.deepEqual([db, translator, chat].map((u) => u.requests.length), seen, 'nothing forwarded');
  });

  it('a workflow without a configured channel', async () => {
    const t = await stepToken('notify', 'chat-api', 'chat.write', { workflow: 'exfiltrate' });
    await assertDenied(rig, [db, translator, chat], () => rig.call('POST', '/api/chat.postMessage', t, CALLS.notify.body), [
      'the token names no workflow with a chat channel',
    ]);
  });
});

describe('workflow-steps: one identity token, exchanged per step at the broker', () => {
  const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
  const JWT = 'urn:ietf:params:oauth:token-type:jwt';
  const identity = (): Promise<string> => exampleToken(NAME, { sub: WORKFLOW, aud: 'regate-broker', claims: { workflow: WORKFLOW } });
  const exchange = (subject: string, audience: string, scope?: string) =>
    rig.call('POST', '/oauth2/token', undefined, new URLSearchParams({ grant_type: GRANT, subject_token: subject, subject_token_type: JWT, audience, ...(scope ? { scope } : {}) }).toString(), {
      'content-type': 'application/x-www-form-urlencoded',
    });
  const claimsOf = (token: string): Record<string, unknown> => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));

  it('each step gets a two-minute token for its one audience and scope, accepted at that API only', async () => {
    const subject = await identity();
    const stepTokens: Record<string, string> = {};
    for (const [step, scope] of [['read', 'tickets.read'], ['translate', 'translate'], ['notify', 'chat.write']] as const) {
      const res = await exchange(subject, CALLS[step].audience, scope);
      assert.equal(res.status, 200, res.text);
      const body = res.json<{ access_token: string; expires_in: number; scope: string; token_type: string }>();
      assert.deepEqual([body.expires_in, body.scope, body.token_type], [120, scope, 'Bearer']);
      const claims = claimsOf(body.access_token);
      assert.deepEqual([claims.iss, claims.sub, claims.aud, claims.workflow], ['https://regate.workflow-steps.regate.dev', WORKFLOW, CALLS[step].audience, WORKFLOW]);
      stepTokens[step] = body.access_token;
    }
    const read = await rig.call('GET', CALLS.read.path, stepTokens.read);
    assert.equal(read.status, 200, read.text);
    const translate = await rig.call('POST', CALLS.translate.path, stepTokens.translate, CALLS.translate.body);
    assert.equal(translate.status, 200, translate.text);
    const notify = await rig.call('POST', CALLS.notify.path, stepTokens.notify, CALLS.notify.body);
    assert.equal(notify.status, 200, notify.text);
    await assertDenied(rig, [db, translator, chat], () => rig.call('GET', CALLS.read.path, stepTokens.notify), ['this route needs a token for tickets-db, not chat-api']);
  });

  it('the identity token itself opens no API', async () => {
    const res = await rig.call('GET', CALLS.read.path, await identity());
    assert.equal(res.status, 403);
  });

  it('the scope map refuses another step\'s scope and an audience no step calls', async () => {
    const subject = await identity();
    const escalate = await exchange(subject, 'tickets-db', 'tickets.read chat.write');
    assert.equal(escalate.status, 400);
    assert.equal(escalate.json().error, 'invalid_scope');
    const foreign = await exchange(subject, 'billing-db', 'tickets.read');
    assert.equal(foreign.status, 400);
    assert.equal(foreign.json().error, 'invalid_target');
  });

  it('regate exchange: prints the step token; a refusal exits 1 with the OAuth error', async () => {
    const run = promisify(execFile);
    const url = `${rig.regate.proxyUrl}/oauth2/token`;
    const subject = await identity();
    const { stdout } = await run(process.execPath, [cliPath, 'exchange', '--url', url, '--subject-token', subject, '--audience', 'tickets-db', '--scope', 'tickets.read']);
    const token = stdout.trim();
    assert.equal(claimsOf(token).aud, 'tickets-db');
    const read = await rig.call('GET', CALLS.read.path, token);
    assert.equal(read.status, 200, read.text);
    await assert.rejects(run(process.execPath, [cliPath, 'exchange', '--url', url, '--subject-token', subject, '--audience', 'tickets-db', '--scope', 'tickets.read chat.write']), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 1);
      assert.match(err.stderr, /^400 \{"error":"invalid_scope"/);
      return true;
    });
  });
});

/**
 * The README's "Per-step tokens from the broker" console block, run as written in
 * one bash against this file's regate (port 8080 → its proxy port, `npm run -s
 * regate --` → the CLI from source): each `$ ` command's output must be the lines
 * shown under it — JSON compared field by field, `eyJ…` standing for a token.
 */
describe('workflow-steps README: the broker walkthrough as written', () => {
  it('every command prints what the README shows', async () => {
    const readme = readFileSync(new URL('../../../examples/workflow-steps/README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Per-step tokens from the broker'));
    const block = /```console\n([\s\S]*?)```/.exec(section)![1]!;
    // Commands (`$ ` lines, with their backslash continuations) and the output shown under each.
    const steps: { command: string; shown: string[] }[] = [];
    const lines = block.split('\n').filter((l) => l !== '');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (line.startsWith('$ ')) {
        let command = line.slice(2);
        while (command.endsWith('\\')) command = `${command.slice(0, -1)} ${lines[++i]!.trim()}`;
        steps.push({ command, shown: [] });
      } else steps.at(-1)!.shown.push(line);
    }
    assert.ok(steps.length >= 5, block);
    const port = new URL(rig.regate.proxyUrl).port;
    const cli = `${JSON.stringify(process.execPath)} ${JSON.stringify(cliPath)}`;
    const SEP = '@@regate-readme-step@@';
    const script = steps.map((s) => `${s.command.replaceAll('npm run -s regate --', cli).replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`)} 2>&1; echo "${SEP}"`).join('\n');
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const { stdout } = await promisify(execFile)('bash', ['-c', script], { cwd: root, timeout: 60_000 });
    const outputs = stdout.split(`${SEP}\n`);
    steps.forEach((step, i) => {
      const got = outputs[i]!.split('\n').filter((l) => l !== '');
      assert.equal(got.length, step.shown.length, `${step.command}\nprinted:\n${outputs[i]}`);
      step.shown.forEach((shown, j) => {
        const [shownStatus, shownJson] = /^(\d{3} )?(\{.*)$/.exec(shown)?.slice(1) ?? [];
        if (shownJson === undefined) return assert.equal(got[j], shown, step.command);
        const [gotStatus, gotJson] = /^(\d{3} )?(\{.*)$/.exec(got[j]!)?.slice(1) ?? [];
        assert.equal(gotStatus, shownStatus, step.command);
        const want = JSON.parse(shownJson) as Record<string, unknown>;
        const have = JSON.parse(gotJson ?? 'null') as Record<string, unknown>;
        assert.deepEqual(Object.keys(have).sort(), Object.keys(want).sort(), step.command);
        for (const [k, v] of Object.entries(want)) {
          if (v === 'eyJ…') assert.match(String(have[k]), /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/, `${step.command}: ${k}`);
          else assert.deepEqual(have[k], v, `${step.command}: ${k}`);
        }
      });
    });
  });
});
