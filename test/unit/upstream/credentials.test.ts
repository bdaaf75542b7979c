/** src/upstream/credentials.ts: secret files, their watch, and what a Credential reveals (issue 15). */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import { Credential, CredentialFile, CredentialFileError, fieldValue, parseSecret, type CredentialReloadResult } from '../../../src/upstream/credentials.ts';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'regate-cred-'));

describe('parseSecret', () => {
  it('removes trailing line breaks only', () => {
    assert.equal(parseSecret(Buffer.from('abc\n')), 'abc');
    assert.equal(parseSecret(Buffer.from('abc\r\n\n')), 'abc');
    assert.equal(parseSecret(Buffer.from('a b\tc')), 'a b\tc');
  });

  it('refuses what an HTTP hop could alter or split, without quoting the content', () => {
    for (const [bytes, re] of [
      ['', /empty/],
      ['\r\n', /empty/],
      ['sek\nrit', /line break/],
      ['sek\rrit', /line break/],
      ['sek\0rit', /NUL/],
      ['sek\x01rit', /control character/],
      ['sek\x7frit', /control character/],
      ['sekrit é', /outside visible ASCII/],
      [' sekrit', /whitespace/],
      ['sekrit\t', /whitespace/],
    ] as const) {
      const r = parseSecret(Buffer.from(bytes, 'utf8'));
      assert.equal(typeof r, 'object', JSON.stringify(bytes));
      assert.match((r as { problem: string }).problem, re);
      assert.doesNotMatch((r as { problem: string }).problem, /sek/);
    }
  });

  it('fieldValue: scheme, one space, secret', () => {
    assert.equal(fieldValue('Bearer', 'x'), 'Bearer x');
    assert.equal(fieldValue(undefined, 'x'), 'x');
  });
});

describe('Credential', () => {
  it('reads the source’s current secret; serializes and inspects to its name only', () => {
    const source = { secret: 'one' };
    const c = new Credential('app', 'translation', { header: 'Authorization', scheme: 'Bearer', value_file: '/f' }, source);
    assert.equal(c.header, 'authorization');
    assert.equal(c.value, 'Bearer one');
    source.secret = 'two';
    assert.equal(c.value, 'Bearer two');
    assert.equal(JSON.stringify({ c }), '{"c":{"credential":"translation"}}');
    assert.doesNotMatch(inspect({ c }, { depth: 5, showHidden: true }), /two/);
    assert.doesNotMatch(String(c) + `${c.name}`, /two/);
  });
});

describe('CredentialFile', () => {
  it('a missing or invalid file at startup: CredentialFileError naming the path, never the content', () => {
    const dir = tmp();
    assert.throws(() => new CredentialFile('app', 'c', join(dir, 'nope'), { reloaded() {} }, { watch: false }), (e: unknown) => e instanceof CredentialFileError && /file not found/.test(e.message));
    writeFileSync(join(dir, 'bad'), 'sekrit\nmore');
    assert.throws(
      () => new CredentialFile('app', 'c', join(dir, 'bad'), { reloaded() {} }, { watch: false }),
      (e: unknown) => e instanceof CredentialFileError && e.message.includes(join(dir, 'bad')) && !e.message.includes('sekrit'),
    );
  });

  it('a replaced file is picked up; a broken one keeps the previous value and reports a failure', async () => {
    const dir = tmp();
    const path = join(dir, 'token');
    writeFileSync(path, 'v1\n');
    const events: [CredentialReloadResult, string | undefined][] = [];
    const f = new CredentialFile('app', 'c', path, { reloaded: (_u, _n, result, problem) => events.push([result, problem]) }, { watch: true, timing: { debounceMs: 10, recheckMs: 60_000 } });
    try {
      assert.equal(f.secret, 'v1');
      writeFileSync(join(dir, 'tmp'), 'v2\n');
      renameSync(join(dir, 'tmp'), path);
      await f.check();
      assert.equal(f.secret, 'v2');
      assert.deepEqual(events.at(-1), ['success', undefined]);
      writeFileSync(join(dir, 'tmp'), '');
      renameSync(join(dir, 'tmp'), path);
      await f.check();
      assert.equal(f.secret, 'v2');
      assert.equal(events.at(-1)![0], 'failure');
      assert.match(events.at(-1)![1]!, /empty/);
      // Unchanged content is not a reload.
      const n = events.length;
      await f.check();
      assert.equal(events.length, n);
      assert.equal(JSON.stringify(f), JSON.stringify({ path }));
    } finally {
      f.stop();
    }
  });
});
