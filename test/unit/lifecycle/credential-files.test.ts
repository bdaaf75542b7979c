/** src/lifecycle/credential-files.ts: credential files shared across runtime versions (issue 15). */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CredentialFiles } from '../../../src/lifecycle/credential-files.ts';

describe('CredentialFiles', () => {
  it('one file per (upstream, name, path), reference-counted: a reload keeps the value read by the running version', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'regate-credfiles-'));
    const path = join(dir, 't');
    writeFileSync(path, 'v1');
    const files = new CredentialFiles({ reloaded() {} }, { debounceMs: 10, recheckMs: 60_000 });
    const a = files.acquire('app', 't', path);
    writeFileSync(path, 'v2');
    await a.file.check();
    // The "next version" acquires the same credential: the same watched file, not a new read.
    const b = files.acquire('app', 't', path);
    assert.equal(b.file, a.file);
    assert.equal(b.file.secret, 'v2');
    // Another name on the same path is its own entry (its own metrics series).
    const c = files.acquire('app', 'other', path);
    assert.notEqual(c.file, a.file);
    assert.equal(files.size, 2);
    files.release(a.key);
    assert.equal(files.size, 2);
    files.release(b.key);
    files.release(c.key);
    assert.equal(files.size, 0);
    files.closeAll();
  });

  it('a file that cannot be used throws on first acquire and leaves nothing open', () => {
    const files = new CredentialFiles({ reloaded() {} });
    assert.throws(() => files.acquire('app', 't', '/nonexistent/regate/credential'));
    assert.equal(files.size, 0);
  });
});
