/**
 * OPA's canonical JSON for signature digests. The end-to-end proof that it
 * matches OPA byte for byte is in signatures.test.ts (bundles signed by the
 * real opa CLI over data with every tricky case); these pin the rules.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalJson } from '../../../src/policy/canonical-json.ts';
import { fileDigest } from '../../../src/policy/signatures.ts';

describe('canonical JSON (OPA hash.go)', () => {
  const canon = (text: string | Uint8Array): string => canonicalJson(typeof text === 'string' ? Buffer.from(text) : text);

  it('sorts keys by UTF-8 bytes, drops whitespace, keeps number literals', () => {
    assert.equal(canon(' { "b" : [1.0, 2e3, -0], "a": {"y": null, "x": true} } '), '{"a":{"x":true,"y":null},"b":[1.0,2e3,-0]}');
    // As UTF-8 bytes U+FF5E (EF BD 9E) sorts before U+1F600 (F0 9F 98 80); as UTF-16 units it sorts after (FF5E > D83D).
    assert.equal(canon('{"\u{1F600}": 1, "\uFF5E": 2}'), '{"\uFF5E":2,"\u{1F600}":1}');
  });

  it("escapes strings like Go's encoder with HTML escaping off", () => {
    assert.equal(canon('["<>&", "\\u2028\\u2029", "\\b\\f\\n\\r\\t", "\\u0001\\u001f", "\\"\\\\/", "é\\ud83d\\ude00", "\\ud800x"]'), '["<>&","\\u2028\\u2029","\\b\\f\\n\\r\\t","\\u0001\\u001f","\\"\\\\/","é\u{1F600}","\uFFFDx"]');
  });

  it('strips a UTF-8 BOM', () => {
    assert.equal(canon(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}')])), '{"a":1}');
  });

  it('hashes structured files canonically and the rest raw', () => {
    assert.equal(fileDigest('x/data.json', Buffer.from('{ "a" : 1 }')), fileDigest('x/data.json', Buffer.from('{"a":1}')));
    assert.notEqual(fileDigest('x/other.json', Buffer.from('{ "a" : 1 }')), fileDigest('x/other.json', Buffer.from('{"a":1}')));
  });
});

describe('canonical JSON parser', () => {
  const canon = (text: string): string => canonicalJson(Buffer.from(text));

  it('keeps the last of repeated keys (Go) and keeps __proto__ a plain key', () => {
    assert.equal(canon('{"a": 1, "a": 2}'), '{"a":2}');
    assert.equal(canon('{"__proto__": {"x": 1}, "b": []}'), '{"__proto__":{"x":1},"b":[]}');
  });

  it('refuses what is not exactly one JSON value', () => {
    const bad = ['', '{', '{"a" 1}', '{"a":1,}', '[1,]', '[1 2]', '01', '1.', '.5', '+1', '1e', 'tru', 'nul', '"a', String.raw`"\u12"`, String.raw`"\x"`, '{} {}', "{'a':1}", '[1]]'];
    for (const text of bad) assert.throws(() => canon(text), SyntaxError, JSON.stringify(text));
  });

  it('refuses a raw control character inside a string, as JSON does', () => {
    assert.throws(() => canon('["a\nb"]'), SyntaxError);
    assert.throws(() => canon('"a\u0001b"'), SyntaxError);
  });

  it('survives deep nesting with a clear error', () => {
    assert.equal(canon(`${'['.repeat(500)}${']'.repeat(500)}`), `${'['.repeat(500)}${']'.repeat(500)}`);
    assert.throws(() => canon(`${'['.repeat(20_000)}${']'.repeat(20_000)}`), SyntaxError);
  });

  it('agrees with JSON.parse on the shape of ordinary documents', () => {
    const doc = { b: [1, 2.5, -3e-7, true, false, null, 'x'], a: { 'ü': 'ß', z: {}, y: [] } };
    const text = JSON.stringify(doc, null, 2);
    const sortDeep = (v: unknown): unknown =>
      Array.isArray(v) ? v.map(sortDeep) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortDeep((v as Record<string, unknown>)[k])])) : v;
    assert.equal(canon(text), JSON.stringify(sortDeep(doc)));
  });
});
