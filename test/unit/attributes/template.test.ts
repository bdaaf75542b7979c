import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileUrlTemplate, encodeParam, pathTemplateParams, urlTemplateProblem } from '../../../src/attributes/template.ts';

describe('pathTemplateParams', () => {
  it('names single-segment and rest parameters, not the anonymous wildcard', () => {
    assert.deepEqual(pathTemplateParams('/v1/{dataset}/files/{path*}'), ['dataset', 'path']);
    assert.deepEqual(pathTemplateParams('/static/*'), []);
    assert.deepEqual(pathTemplateParams('/'), []);
  });
});

describe('urlTemplateProblem', () => {
  const ok = (url: string, params: string[] = ['file']) => assert.equal(urlTemplateProblem(url, params), null, url);
  const bad = (url: string, pattern: RegExp, params: string[] = ['file']) => {
    const problem = urlTemplateProblem(url, params);
    assert.ok(problem !== null, `${url} should be refused`);
    assert.match(problem, pattern);
  };

  it('accepts parameters in the path and the query', () => {
    ok('http://127.0.0.1:7000/files/{file}');
    ok('https://catalog.internal/v1/files/{file}/meta?fields=tags');
    ok('http://catalog/lookup?id={file}&kind=file');
    ok('http://catalog/static', []);
  });

  it('refuses a parameter the route does not have, naming the ones it has', () => {
    bad('http://c/files/{fiel}', /\{fiel\} is not a path parameter of this route \(match.path has \{file\}\)/);
    bad('http://c/files/{x}', /match.path has none/, []);
  });

  it('refuses parameters in the scheme, user info, host or port (the lookup target must be fixed)', () => {
    for (const url of ['http://{file}/x', 'http://cat{file}.internal/x', 'http://c:{file}/x', 'http://{file}@c/x']) bad(url, /only appear in the path or the query/);
  });

  it('refuses credentials, fragments, bad braces and non-ASCII', () => {
    bad('http://user:pw@c/{file}', /credentials/);
    bad('http://c/{file}#frag', /fragment/);
    bad('http://c/{file', /unbalanced/);
    bad('http://c/}{file}', /unbalanced/);
    bad('http://c/{1x}', /invalid parameter/, ['1x']);
    bad('http://c/fichier-é/{file}', /printable ASCII/);
    bad('ftp://c/{file}', /http/);
  });
});

describe('compileUrlTemplate', () => {
  it('fills the path and query with percent-encoded values', () => {
    const t = compileUrlTemplate('http://127.0.0.1:7000/files/{file}?v={file}', ['file']);
    assert.equal(t.origin, 'http://127.0.0.1:7000');
    assert.deepEqual(t.params, ['file', 'file']);
    assert.equal(t.fill({ file: 'report.csv' }), '/files/report.csv?v=report.csv');
    assert.equal(t.url({ file: 'a b' }), 'http://127.0.0.1:7000/files/a%20b?v=a%20b');
  });

  it("keeps '/', '?', '#', '&', '=' and '%' in a value as data, never structure", () => {
    const t = compileUrlTemplate('http://c/files/{path}/meta', ['path']);
    assert.equal(t.fill({ path: 'dir/sub/x.csv' }), '/files/dir%2Fsub%2Fx.csv/meta');
    assert.equal(t.fill({ path: 'a?b=1&c#frag' }), '/files/a%3Fb%3D1%26c%23frag/meta');
    assert.equal(t.fill({ path: '100%' }), '/files/100%25/meta');
    assert.equal(t.fill({ path: 'ü' }), '/files/%C3%BC/meta');
  });

  it('encodes dots-only values so a catalog cannot be walked up its tree', () => {
    assert.equal(encodeParam('..'), '%2E%2E');
    assert.equal(encodeParam('.'), '%2E');
    assert.equal(encodeParam('a..b'), 'a..b');
    assert.equal(compileUrlTemplate('http://c/files/{f}', ['f']).fill({ f: '..' }), '/files/%2E%2E');
  });

  it('gives an origin-relative target that always starts with /', () => {
    assert.equal(compileUrlTemplate('http://c?id={f}', ['f']).fill({ f: 'x' }), '/?id=x');
    assert.equal(compileUrlTemplate('http://c', []).fill({}), '/');
  });

  it('throws TypeError for an invalid template (the loader reports it first)', () => {
    assert.throws(() => compileUrlTemplate('http://{f}/x', ['f']), TypeError);
  });
});
