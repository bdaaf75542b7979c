import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { encodingBuiltins } from '../../../../src/policy/builtins/encoding.ts';
import { readBundle } from '../../../../src/policy/bundle.ts';
import { loadPolicyEngine } from '../../../../src/policy/wasm.ts';
import { buildBundle, opaBin } from '../../../helpers/opa.ts';

// Every builtin over awkward strings; the expected values come from OPA's Go
// implementation (`opa eval`), the actual ones from the wasm module calling
// regate's JS implementation.
const POLICY = `package enc
import rego.v1

out[s] := {
  "md5": crypto.md5(s), "sha1": crypto.sha1(s), "sha256": crypto.sha256(s),
  "hmac_md5": crypto.hmac.md5(s, "key"), "hmac_sha1": crypto.hmac.sha1(s, "kéy"),
  "hmac_sha256": crypto.hmac.sha256(s, ""), "hmac_sha512": crypto.hmac.sha512(s, s),
  "equal_self": crypto.hmac.equal(s, s), "equal_other": crypto.hmac.equal(s, "abc"),
  "hex": hex.encode(s), "b64url": base64url.encode_no_pad(s),
} if some s in input.strings
`;

const STRINGS = ['', 'abc', 'héllo wörld', '日本語 🎉', '?>~ÿ', 'a\u0000b', 'x'.repeat(1000)];

describe('encoding builtins match OPA', () => {
  let expected: unknown;
  let actual: unknown;
  before(async () => {
    const bundlePath = await buildBundle({ files: { 'enc.rego': POLICY }, entrypoints: ['enc/out'] });
    const inputFile = join(dirname(bundlePath), 'input.json');
    await writeFile(inputFile, JSON.stringify({ strings: STRINGS }));
    const regoFile = join(dirname(bundlePath), 'enc.rego');
    await writeFile(regoFile, POLICY);
    const { stdout } = await promisify(execFile)(opaBin(), ['eval', '-d', regoFile, '-i', inputFile, '-f', 'json', 'data.enc.out'], { maxBuffer: 16 * 1024 * 1024 });
    expected = (JSON.parse(stdout) as { result: [{ expressions: [{ value: unknown }] }] }).result[0].expressions[0].value;
    const engine = await loadPolicyEngine(await readBundle(bundlePath), { builtins: encodingBuiltins });
    assert.deepEqual(engine.unsupportedBuiltins, []);
    actual = (engine.evaluateRaw('enc/out', { strings: STRINGS }, 0n)[0] as { result: unknown }).result;
  });

  it('same results for every string', () => {
    assert.ok(expected && typeof expected === 'object' && Object.keys(expected).length === STRINGS.length);
    assert.deepEqual(actual, expected);
  });

  it("a non-string argument is OPA's type error (strict builtin errors), naming the operand", () => {
    for (const [name, fn] of Object.entries(encodingBuiltins)) {
      assert.throws(() => fn({ nowNs: 0n }, 5, 'a'), { message: `${name}: operand 1 must be string but got number` });
      assert.throws(() => fn({ nowNs: 0n }, [], 'a'), { message: `${name}: operand 1 must be string but got array` });
      if (name.startsWith('crypto.hmac.')) {
        assert.throws(() => fn({ nowNs: 0n }, 'a', 5n), { message: `${name}: operand 2 must be string but got number` });
        assert.throws(() => fn({ nowNs: 0n }, 'a', null), { message: `${name}: operand 2 must be string but got null` });
      }
    }
  });
});
