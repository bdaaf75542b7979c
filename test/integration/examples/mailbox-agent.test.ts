/**
 * examples/mailbox-agent end to end: the example's config and policy in a real
 * regate process in front of a real upstream standing in for the mail API.
 * The PATCH route parses the JSON body (`routes[].body`) so the policy can
 * refuse updates that change anything but `categories`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertAllowed, assertDenied, exampleToken, startExample, type ExampleRig } from '../../helpers/examples.ts';
import { startUpstreamServer, type TestUpstream } from '../../helpers/upstream-server.ts';

const NAME = 'mailbox-agent';
const BOX = 'support@contoso.example';
const OTHER = 'ceo@contoso.example';
const MSG = 'AAMkAGI2TG93AAA=';

let mail: TestUpstream;
let rig: ExampleRig;
let agent: string;

const agentToken = (claims: Record<string, unknown> = {}) =>
  exampleToken(NAME, { sub: 'categorizer-agent', claims: { mailbox: BOX, scope: 'mail.categorize', ...claims } });

before(async () => {
  mail = await startUpstreamServer();
  rig = await startExample(NAME, { upstreams: { mail: mail.url } });
  agent = await agentToken();
});

after(async () => {
  await rig?.stop();
  await mail?.close();
});

describe('mailbox-agent: the agent works its one mailbox', () => {
  it('lists the messages of its assigned mailbox', async () => {
    const path = `/v1.0/users/${BOX}/messages?$top=25&$select=subject,categories`;
    const { echo } = await assertAllowed(rig, () => rig.call('GET', path, agent), {
      method: 'GET',
      // regate forwards the query in its canonical encoding, the form the policy saw.
      path: `/v1.0/users/${BOX}/messages?%24top=25&%24select=subject%2Ccategories`,
      reasons: [`list-messages in the assigned mailbox ${BOX}`],
    });
    assert.equal(echo.headers['x-agent'], 'categorizer-agent');
  });

  it('reads a message (mailbox names compare case-insensitively)', async () => {
    const path = `/v1.0/users/Support@Contoso.example/messages/${MSG}`;
    await assertAllowed(rig, () => rig.call('GET', path, agent), { method: 'GET', path, reasons: [`read-message in the assigned mailbox ${BOX}`] });
  });

  it('sets categories: the body the policy judged is the body the mail API gets', async () => {
    const body = '{ "categories" : ["Billing", "Urgent"] }';
    const { echo, record } = await assertAllowed(rig, () => rig.call('PATCH', `/v1.0/users/${BOX}/messages/${MSG}`, agent, body), {
      method: 'PATCH',
      path: `/v1.0/users/${BOX}/messages/${MSG}`,
      reasons: [`update-message in the assigned mailbox ${BOX}`],
    });
    assert.equal(echo.body, body, 'forwarded byte for byte');
    assert.deepEqual((record.input as any).request.body, { categories: ['Billing', 'Urgent'] });
  });
});

describe('mailbox-agent: denials', () => {
  it('another mailbox', async () => {
    const reason = [`the agent is assigned mailbox ${BOX}, not ${OTHER}`];
    await assertDenied(rig, [mail], () => rig.call('GET', `/v1.0/users/${OTHER}/messages`, agent), reason);
    await assertDenied(rig, [mail], () => rig.call('GET', `/v1.0/users/${OTHER}/messages/${MSG}`, agent), reason);
    await assertDenied(rig, [mail], () => rig.call('PATCH', `/v1.0/users/${OTHER}/messages/${MSG}`, agent, { categories: ['Spam'] }), reason);
  });

  it('sending mail, even from its own mailbox', async () => {
    const send = { message: { subject: 'hi', toRecipients: [{ emailAddress: { address: 'x@example.com' } }] } };
    await assertDenied(rig, [mail], () => rig.call('POST', `/v1.0/users/${BOX}/sendMail`, agent, send), ['the agent may not call send-mail']);
  });

  it('deleting mail', async () => {
    await assertDenied(rig, [mail], () => rig.call('DELETE', `/v1.0/users/${BOX}/messages/${MSG}`, agent), ['the agent may not call delete-message']);
  });

  it('a PATCH that touches other fields', async () => {
    const path = `/v1.0/users/${BOX}/messages/${MSG}`;
    await assertDenied(rig, [mail], () => rig.call('PATCH', path, agent, { categories: ['Billing'], isRead: true }), [
      'a message update may change only categories, not: isRead',
    ]);
    await assertDenied(rig, [mail], () => rig.call('PATCH', path, agent, { subject: 'Re: refund', body: { content: 'x' } }), [
      'a message update may change only categories, not: body, subject',
    ]);
    await assertDenied(rig, [mail], () => rig.call('PATCH', path, agent, { categories: 'Billing' }), ['categories must be a list of non-empty strings']);
  });

  it('a PATCH body the policy cannot read is not a categories-only update', async () => {
    const path = `/v1.0/users/${BOX}/messages/${MSG}`;
    const reasons = ['a message update must be a JSON object'];
    // Not declared as JSON: regate does not parse it, the policy sees no body.
    await assertDenied(rig, [mail], () => rig.call('PATCH', path, agent, '{"categories":["Billing"]}', { 'content-type': 'text/plain' }), reasons);
    // Declared as JSON but malformed: refused before the policy (400 body_malformed), nothing forwarded.
    const seen = mail.requests.length;
    const malformed = await rig.call('PATCH', path, agent, '{"categories":["Billing"]');
    assert.equal(malformed.status, 400);
    assert.match(malformed.text, /"reason":"body_malformed"/);
    assert.equal(mail.requests.length, seen);
    // A JSON array.
    await assertDenied(rig, [mail], () => rig.call('PATCH', path, agent, [{ categories: ['Billing'] }]), reasons);
  });

  it('a PATCH body over the route limit: 413, nothing forwarded', async () => {
    const seen = mail.requests.length;
    const big = { categories: Array.from({ length: 2000 }, (_, i) => `category-${i}`) };
    const res = await rig.call('PATCH', `/v1.0/users/${BOX}/messages/${MSG}`, agent, big);
    assert.equal(res.status, 413);
    assert.equal(res.json().reason, 'body_too_large');
    assert.equal(mail.requests.length, seen);
  });

  it('tokens without the mailbox claim or without the scope', async () => {
    const noBox = await exampleToken(NAME, { sub: 'categorizer-agent', claims: { scope: 'mail.categorize' } });
    await assertDenied(rig, [mail], () => rig.call('GET', `/v1.0/users/${BOX}/messages`, noBox), ['the token names no assigned mailbox']);
    const noScope = await agentToken({ scope: 'mail.read' });
    await assertDenied(rig, [mail], () => rig.call('GET', `/v1.0/users/${BOX}/messages`, noScope), ['the token lacks scope mail.categorize']);
  });

  it('no token: 401', async () => {
    const seen = mail.requests.length;
    const res = await rig.call('GET', `/v1.0/users/${BOX}/messages`);
    assert.equal(res.status, 401);
    assert.equal(mail.requests.length, seen);
  });
});

describe('mailbox-agent: hostile input never breaks the policy engine (issue 9)', () => {
  const path = `/v1.0/users/${BOX}/messages/${MSG}`;

  it('1,100 PATCHes with a lone surrogate escape are refused as body_malformed, and later decisions are right', async () => {
    const seen = mail.requests.length;
    // Each used to be a 500 (the wasm JSON parser refused the escape) that leaked
    // wasm stack; after ~1,024 every request was a 500 until restart.
    for (let i = 0; i < 1100; i++) {
      const res = await rig.call('PATCH', path, agent, i % 2 ? '{"categories":["\\ud800"]}' : '{"categories":["Billing\\udfff\\u0000"]}');
      if (res.status !== 400 || !res.text.includes('"body_malformed"')) assert.fail(`PATCH ${i}: ${res.status} ${res.text}`);
    }
    assert.equal(mail.requests.length, seen, 'nothing forwarded');
    await assertDenied(rig, [mail], () => rig.call('DELETE', path, agent), ['the agent may not call delete-message']);
    // A valid surrogate pair is a character like any other.
    const body = '{"categories":["Billing \\ud83d\\udce7"]}';
    const { echo, record } = await assertAllowed(rig, () => rig.call('PATCH', path, agent, body), { method: 'PATCH', path, reasons: [`update-message in the assigned mailbox ${BOX}`] });
    assert.equal(echo.body, body);
    assert.deepEqual((record.input as any).request.body, { categories: ['Billing 📧'] });
  });

  it('a lone surrogate in a token claim is U+FFFD to the policy, as in OPA: a deny, not a 500', async () => {
    const token = await agentToken({ mailbox: `\ud800${BOX}` });
    const rec = await assertDenied(rig, [mail], () => rig.call('GET', `/v1.0/users/${BOX}/messages`, token), [`the agent is assigned mailbox \ufffd${BOX}, not ${BOX}`]);
    assert.equal((rec.input as any).token.mailbox, `\ufffd${BOX}`);
    await assertAllowed(rig, () => rig.call('GET', `/v1.0/users/${BOX}/messages/${MSG}`, agent), { method: 'GET', path: `/v1.0/users/${BOX}/messages/${MSG}` });
  });
});
