import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseForm } from '../../../src/broker/form.ts';
import { OAuthError } from '../../../src/broker/oauth-error.ts';

const parse = (s: string): Record<string, readonly string[]> => Object.fromEntries(parseForm(Buffer.from(s)));
const refused = (s: string | Buffer, reason: string): void => {
  assert.throws(() => parseForm(typeof s === 'string' ? Buffer.from(s) : s), (err: unknown) => err instanceof OAuthError && err.error === 'invalid_request' && err.reason === reason);
};

describe('parseForm', () => {
  it('decodes + and percent-escapes as UTF-8; empty values count as omitted', () => {
    assert.deepEqual(parse('scope=a+b&x=%C3%A9&empty=&bare'), { scope: ['a b'], x: ['é'] });
  });
  it('audience and resource may repeat; anything else repeated is invalid_request (RFC 6749 §3.2)', () => {
    assert.deepEqual(parse('audience=a&audience=b&resource=https%3A%2F%2Fr'), { audience: ['a', 'b'], resource: ['https://r'] });
    refused('scope=a&scope=b', 'duplicate_parameter');
    refused('subject_token=a&subject_token=a', 'duplicate_parameter');
  });
  it('refuses broken percent-encoding, bytes that are not UTF-8 and too many parameters', () => {
    refused('a=%zz', 'form_malformed');
    refused('a=%', 'form_malformed');
    refused('a=%FF', 'form_malformed');
    refused(Buffer.from([0x61, 0x3d, 0xff]), 'form_malformed');
    refused(Array.from({ length: 65 }, (_, i) => `p${i}=1`).join('&'), 'form_malformed');
  });
});
