import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { PROBLEM_CONTENT_TYPE, problemBody, sendProblem } from '../../../src/http/problem.ts';

describe('problemBody', () => {
  it('writes the RFC 9457 members in order, with regate extensions', () => {
    const body = problemBody(404, { decisionId: 'd-1', reason: 'route_not_found', detail: 'no route matches this request' });
    assert.equal(
      body,
      '{"type":"urn:regate:problem:route_not_found","title":"Not Found","status":404,"detail":"no route matches this request","decision_id":"d-1","reason":"route_not_found"}',
    );
  });

  it('includes reasons only when given, even if empty', () => {
    assert.ok(!('reasons' in JSON.parse(problemBody(403, { decisionId: 'd', reason: 'policy_denied' }))));
    assert.ok(!('reasons' in JSON.parse(problemBody(403, { decisionId: 'd', reason: 'policy_denied', reasons: undefined }))));
    assert.deepEqual(JSON.parse(problemBody(403, { decisionId: 'd', reason: 'policy_denied', reasons: [] })).reasons, []);
    assert.deepEqual(JSON.parse(problemBody(403, { decisionId: 'd', reason: 'policy_denied', reasons: ['not owner'] })).reasons, ['not owner']);
  });

  it('lets type, title and instance be overridden', () => {
    const doc = JSON.parse(problemBody(400, { type: 'https://regate.dev/problems/x', title: 'Bad target', instance: '/req/1', decisionId: 'd', reason: 'dot_segment' }));
    assert.deepEqual(doc, { type: 'https://regate.dev/problems/x', title: 'Bad target', status: 400, instance: '/req/1', decision_id: 'd', reason: 'dot_segment' });
  });

  it('uses the standard status text as title', () => {
    for (const [status, title] of [[400, 'Bad Request'], [401, 'Unauthorized'], [403, 'Forbidden'], [405, 'Method Not Allowed'], [414, 'URI Too Long'], [502, 'Bad Gateway'], [599, 'Server Error'], [499, 'Client Error']] as const) {
      assert.equal(JSON.parse(problemBody(status, { decisionId: 'd', reason: 'r' })).title, title);
    }
  });

  it('escapes untrusted text as JSON', () => {
    const doc = JSON.parse(problemBody(400, { decisionId: 'd', reason: 'r', detail: '"}\n<script>\u2028' }));
    assert.equal(doc.detail, '"}\n<script>\u2028');
  });

  it('refuses a non-error status (a bug)', () => {
    for (const s of [200, 302, 399, 600, 404.5, Number.NaN]) assert.throws(() => problemBody(s, { decisionId: 'd', reason: 'r' }), TypeError);
  });
});

describe('sendProblem (loopback)', () => {
  let handler: (res: ServerResponse, method: string) => void = () => {};
  const server = createServer((req, res) => handler(res, req.method ?? 'GET'));
  let port = 0;

  before(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  function get(method = 'GET'): Promise<{ status: number; headers: IncomingHttpHeaders; body: string; complete: boolean }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method, path: '/', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, complete: res.complete }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('writes application/problem+json with Content-Length and Cache-Control: no-store', async () => {
    handler = (res) => sendProblem(res, 405, { decisionId: 'd-2', reason: 'method_not_allowed', detail: 'nope' }, { allow: 'GET, PUT' });
    const r = await get();
    assert.equal(r.status, 405);
    assert.equal(r.headers['content-type'], PROBLEM_CONTENT_TYPE);
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.equal(r.headers['allow'], 'GET, PUT');
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
    assert.equal(r.headers['transfer-encoding'], undefined);
    assert.deepEqual(JSON.parse(r.body), {
      type: 'urn:regate:problem:method_not_allowed',
      title: 'Method Not Allowed',
      status: 405,
      detail: 'nope',
      decision_id: 'd-2',
      reason: 'method_not_allowed',
    });
  });

  it('counts Content-Length in bytes, not characters', async () => {
    handler = (res) => sendProblem(res, 403, { decisionId: 'd', reason: 'policy_denied', reasons: ['modèle réservé 日本'] });
    const r = await get();
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
    assert.deepEqual(JSON.parse(r.body).reasons, ['modèle réservé 日本']);
  });

  it('does not let extra headers override the content type, length or caching', async () => {
    handler = (res) =>
      sendProblem(res, 403, { decisionId: 'd', reason: 'policy_denied' }, { 'Content-Type': 'text/html', 'cache-control': 'public, max-age=600', 'content-length': '1', 'x-policy': 'a' });
    const r = await get();
    assert.equal(r.headers['content-type'], PROBLEM_CONTENT_TYPE);
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.equal(r.headers['x-policy'], 'a');
    assert.equal(JSON.parse(r.body).reason, 'policy_denied');
  });

  it('sends headers but no body for HEAD', async () => {
    handler = (res) => sendProblem(res, 404, { decisionId: 'd', reason: 'route_not_found' });
    const r = await get('HEAD');
    assert.equal(r.status, 404);
    assert.equal(r.body, '');
    assert.ok(Number(r.headers['content-length']) > 0);
  });

  it('cuts the connection instead of throwing when headers were already sent', async () => {
    let threw: unknown = null;
    handler = (res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      try {
        sendProblem(res, 502, { decisionId: 'd', reason: 'upstream_reset' });
      } catch (err) {
        threw = err;
      }
    };
    // The client sees a truncated chunked body: an error or an incomplete message, never a clean end.
    const outcome = await get().then(
      (r) => (r.complete ? 'complete' : 'incomplete'),
      () => 'error',
    );
    assert.notEqual(outcome, 'complete');
    assert.equal(threw, null);
  });

  it('does nothing on a response that already ended', async () => {
    let threw: unknown = null;
    handler = (res) => {
      res.end('done');
      try {
        sendProblem(res, 500, { decisionId: 'd', reason: 'internal_error' });
      } catch (err) {
        threw = err;
      }
    };
    const r = await get();
    assert.equal(r.status, 200);
    assert.equal(r.body, 'done');
    assert.equal(threw, null);
  });
});
