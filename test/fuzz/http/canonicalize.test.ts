import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BadRequestError, UriTooLongError } from '../../../src/errors.ts';
import { canonicalizeTarget, TARGET_REASONS, type CanonicalTarget } from '../../../src/http/canonicalize.ts';

const REASONS: ReadonlySet<string> = new Set(TARGET_REASONS);
const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);

/** Fragments that exercise the interesting branches far more often than uniform strings would. */
const piece = fc.constantFrom(
  '/', '/', '/', '?', '&', '=', '+', '#', ';', '\\', ':', '@', '*', '.', '..', '%', '%2e', '%2E', '%2f', '%2F', '%5c', '%3b',
  '%25', '%252e', '%20', '%00', '%0a', '%7f', '%C2%85', '%c3%a9', '%C0%AE', '%ff', '%EF%BC%8F', '%E2%80%A5', '%EF%BB%BF', '%EF%BC%85', '%E3%80%80', '%C2%A0', '%09',
  '%zz', '%4', 'a', 'b', 'Z', '0', '~', '-', '_', ' ', 'é', '\u0000', '\n', '\u0085', '{', '|', '"', 'http://', '//',
);
const structured = fc.array(piece, { maxLength: 24 }).map((parts) => parts.join(''));
/** Mostly-acceptable targets, so the accepted-branch properties get real coverage. */
const safeish = fc
  .array(fc.constantFrom('/', '/', 'a', '.', '..', '+', ':', '%20', '%25', '%252e', '%2e', '%c3%a9', '%E6%97%A5', '%EF%BB%BF', '{', '"', '?', '&', '=', '~'), { maxLength: 24 })
  .map((parts) => '/' + parts.join(''));
const targetLike = fc.oneof(
  structured,
  safeish,
  structured.map((s) => '/' + s),
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc.string({ unit: 'binary', maxLength: 64 }).map((s) => '/' + s),
  fc.string({ unit: fc.constantFrom(...'/%.2eEfF5cC3bB?&=+#;\\a'), maxLength: 40 }).map((s) => '/' + s),
);

function wireTarget(t: CanonicalTarget): string {
  return t.wireQuery === '' ? t.wirePath : `${t.wirePath}?${t.wireQuery}`;
}

function tryCanonicalize(raw: string): CanonicalTarget | BadRequestError | UriTooLongError {
  try {
    return canonicalizeTarget(raw, 256);
  } catch (err) {
    // Fail closed, with a known, typed error: never a TypeError, URIError, RangeError...
    if (err instanceof UriTooLongError) return err;
    assert.ok(err instanceof BadRequestError, `unexpected ${String(err)} for ${JSON.stringify(raw)}`);
    assert.ok(REASONS.has(err.reason), `undocumented reason ${err.reason}`);
    return err;
  }
}

describe('canonicalizeTarget (property)', () => {
  it('returns or refuses with a typed error; accepted targets are safe and a fixed point', () => {
    fc.assert(
      fc.property(targetLike, (raw) => {
        const t = tryCanonicalize(raw);
        if (!('segments' in t)) return;
        assert.ok(t.segments.length >= 1);
        t.segments.forEach((s, i) => {
          assert.ok(s !== '.' && s !== '..', 'dot segment');
          assert.ok(!/[/\\;\u0000-\u001f\u007f-\u009f]/u.test(s), `forbidden character in ${JSON.stringify(s)}`);
          assert.ok(s !== '' || i === t.segments.length - 1, 'empty segment before the last');
          assert.equal(s.trim(), s, `edge white space in ${JSON.stringify(s)}`);
          assert.ok(!s.normalize('NFKC').includes('%') || s.includes('%'), `fullwidth percent in ${JSON.stringify(s)}`);
        });
        assert.equal(t.path, '/' + t.segments.join('/'));
        for (const values of Object.values(t.query)) for (const v of values) assert.ok(!/[\u0000-\u001f\u007f-\u009f]/u.test(v));
        // The wire form is plain printable ASCII without fragment or ambiguity.
        assert.match(wireTarget(t), /^\/[\x21-\x7e]*$/);
        assert.ok(!/[#\\;+]|\/\/|%2[fF]/.test(t.wirePath));
        // Idempotence: the upstream, canonicalizing what we forward, sees the same thing.
        const again = canonicalizeTarget(wireTarget(t), 1 << 20);
        assert.deepEqual(again, t);
        assert.equal(wireTarget(again), wireTarget(t));
      }),
      { numRuns: RUNS },
    );
  });

  it('agrees with WHATWG URL on the forwarded target', () => {
    fc.assert(
      fc.property(targetLike, (raw) => {
        const t = tryCanonicalize(raw);
        if (!('segments' in t)) return;
        const url = new URL(wireTarget(t), 'http://upstream.invalid');
        // WHATWG would resolve dot segments or rewrite the path if anything were left ambiguous.
        assert.equal(url.pathname, t.wirePath);
        assert.deepEqual(url.pathname.split('/').slice(1).map(decodeURIComponent), t.segments);
        for (const [k, v] of Object.entries(t.query)) assert.deepEqual(url.searchParams.getAll(k), v);
      }),
      { numRuns: RUNS },
    );
  });

  it('accepts every path built from safe decoded segments and round-trips them', () => {
    const segment = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }).filter(
      // Edge white space is refused (encoded_whitespace); inside a segment it is data.
      (s) => s !== '.' && s !== '..' && !/[/\\;\u0000-\u001f\u007f-\u009f]/u.test(s) && s.normalize('NFKC') === s && s.trim() === s,
    );
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 6 }), fc.boolean(), (segments, trailingSlash) => {
        const raw = '/' + segments.map(encodeURIComponent).join('/') + (trailingSlash ? '/' : '');
        const t = canonicalizeTarget(raw);
        assert.deepEqual(t.segments, trailingSlash ? [...segments, ''] : segments);
      }),
      { numRuns: RUNS },
    );
  });
});
