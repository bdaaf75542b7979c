/**
 * regate's sprintf against outputs of `opa eval --strict-builtin-errors`
 * (opa 1.22.2) for the same format and values. Numbers are given as the
 * exact text the policy holds (RegoNumber), as the engine passes them.
 * The differential test (test/differential/builtins.test.ts) checks many
 * more generated cases against a live opa.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatFloat, goQuote, regoSprintf, regoText } from '../../../../src/policy/builtins/sprintf.ts';
import { RegoNumber } from '../../../../src/policy/number-text.ts';

const n = (text: string): RegoNumber => new RegoNumber(text);

// [format, values, OPA's output]
const CASES: [string, unknown[], string][] = [
  ['%s|%v|%d', [n('0'), n('0'), n('0')], '%!s(int64=0)|0|0'],
  ['%v %s %d %x', [n('18446744073709551616'), n('18446744073709551616'), n('18446744073709551616'), n('18446744073709551616')], '18446744073709551616 18446744073709551616 18446744073709551616 10000000000000000'],
  ['%v %s %d %f %e %g', [n('1.5'), n('1.5'), n('1.5'), n('1.5'), n('1.5'), n('1.5')], '1.5 %!s(float64=1.5) %!d(float64=1.5) 1.500000 1.500000e+00 1.5'],
  ['%v %s', [n('1e400'), n('1e400')], '1e400 1e400'],
  ['%v %s %d', [[n('1'), 'a', { b: null }], { x: [n('1'), n('2')] }, true], '[1, "a", {"b": null}] {"x": [1, 2]} %!d(string=true)'],
  ['%v %d', [n('1e2'), n('1.0')], '100 %!d(float64=1)'],
  ['%v %v %v', [n('1234567.0'), n('100000000000000000000000.5'), n('0.00001')], '1.234567e+06 1.0000000000000001e+23 1e-05'],
  ['%5.2f|%-5d|%05d|%q|%x|%X|%o|%b|%c|%U', [n('3.14159'), n('42'), n('42'), 'hi\n', 'hi', n('255'), n('8'), n('5'), n('65'), n('65')], ' 3.14|42   |00042|"hi\\n"|6869|FF|10|101|A|U+0041'],
  ['%d %d', [n('1')], '1 %!d(MISSING)'],
  ['%d', [n('1'), n('2')], '1%!(EXTRA int64=2)'],
  ['%!', [], '%!!(MISSING)'],
  ['%[2]d %[1]d %*d', [n('1'), n('2'), n('3'), n('4')], '2 1  3'],
  ['%v', [null], 'null'],
  ['%v', [{ a: 'b"c' }], '{"a": "b\\"c"}'],
  ['%d %v', [n('-9223372036854775808'), n('9223372036854775808')], '-9223372036854775808 9223372036854775808'],
  ['%v|%v|%v|%d|%s', [n('-1e-400'), n('1e-400'), n('-0'), n('-0'), n('-0.0')], '-0|0|0|0|%!s(float64=-0)'],
  ['%v', [{ b: n('1'), a: [n('1.0'), '\u00a0\u2028x\u0007'] }], '{"a": [1.0, "\\u00a0\\u2028x\\a"], "b": 1}'],
  ['%.3s|%5.1q|%x|% x|%#x|%X', ['日本語', 'abc', '日', 'hi', 'hi', '\u00ff'], '日本語|  "a"|e697a5|68 69|0x6869|C3BF'],
  ['%e|%.2f|%.0f|%g|%.3g|%G', [n('0.125'), n('0.125'), n('2.5'), n('1e21'), n('1234.5678'), n('1e-7')], '1.250000e-01|0.12|2|1e+21|1.23e+03|1E-07'],
  ['%+d|% d|%+.3d|%-+6d|%#o|%#b|%08.3f|%-8.2e|', [n('5'), n('5'), n('5'), n('5'), n('8'), n('5'), n('-3.14159'), n('1234.5')], '+5| 5|+005|+5    |010|0b101|-003.142|1.23e+03|'],
  ['%c|%q|%U|%#U|%c', [n('128512'), n('65'), n('128512'), n('128512'), n('55296')], '😀|\'A\'|U+1F600|U+1F600 \'😀\'|\ufffd'],
  ['%T %T %T %T %T', [n('1'), n('1.5'), 's', [n('1')], n('18446744073709551616')], 'int64 float64 string string *big.Int'],
  ['%p %t %t', [n('1'), true, 'x'], '%!p(int64=1) %!t(string=true) %!t(string=x)'],
  ['%08d|%-08d|%+08d|%x|%X', [n('-42'), n('-42'), n('42'), n('-255'), n('18446744073709551616')], '-0000042|-42     |+0000042|-ff|10000000000000000'],
  ['%v', [n('1e308')], '1e+308'],
  ['%5v|%-5v|%05v', [[n('1')], 'ab', n('7')], '  [1]|ab   |00007'],
  ['%d', [n('9223372036854775807.0')], '%!d(float64=9.223372036854776e+18)'],
  ['%.2f %v', [n('1e400'), n('123456789012345678901234567890.5')], '%!f(string=1e) 1.2345678901234568e+29'],
  ['%+v|%+d|%#v|%#v|%#v|%+q|%#q|%#x|%+v', [n('5'), n('5'), n('1.0'), 'a', n('18446744073709551616'), 'é', 'a', n('1.5'), n('18446744073709551616')], '5|+5|1|"a"|18446744073709551616|"\\u00e9"|`a`|0x1.8000p+00|+18446744073709551616'],
  ['%b|%x|%X|%.2x|%#g|%#.3e|%#.0f|%#g', [n('1.0'), n('1.5'), n('-0.1'), n('3.14159'), n('1.0'), n('2.0'), n('3.0'), n('123456789.0')], '4503599627370496p-52|0x1.8p+00|-0X1.999999999999AP-04|0x1.92p+01|1.00000|2.000e+00|3.|1.23456789e+08'],
  ['%6.2v|%.1v|%10.3v|%-10.3v|', [n('3.14159'), n('3.14159'), 'abcdef', n('18446744073709551616')], '   3.1|3|       abc|18446744073709551616|'],
  ['%[3]*.[2]*[1]f|%[5]d|%[0]d|%[x]d|%.[2]d|%[2]2d', [n('12.0'), n('2'), n('6'), n('4')], ' 12.00|%!d(BADINDEX)|%!d(BADINDEX)|%!d(BADINDEX)|2|%!d(BADINDEX)'],
  ['%*d|%-*d|%.*f|%*d', [n('5'), n('1'), n('-5'), n('1'), n('2'), n('3.14159'), n('1.5'), n('2')], '    1|1    |3.14|%!(BADWIDTH)2'],
  ['%', [], '%!(NOVERB)'],
  ['%5', [n('1')], '%!(NOVERB)%!(EXTRA int64=1)'],
  ['%ä|%☃', [n('1'), n('2')], '%!ä(int64=1)|%!☃(int64=2)'],
];

describe('sprintf (Go fmt semantics, as OPA)', () => {
  for (const [format, values, want] of CASES) {
    it(`sprintf(${JSON.stringify(format)}) = ${JSON.stringify(want)}`, () => {
      assert.equal(regoSprintf(format, values), want);
    });
  }

  it("raises OPA's operand type errors", () => {
    assert.throws(() => regoSprintf(1, []), { message: 'sprintf: operand 1 must be string but got number' });
    assert.throws(() => regoSprintf('%s', 'x'), { message: 'sprintf: operand 2 must be array but got string' });
    assert.throws(() => regoSprintf('%s', { a: 1 }), { message: 'sprintf: operand 2 must be array but got object' });
  });

  it('rounds half to even on the exact binary value, as strconv does', () => {
    assert.equal(formatFloat(0.125, 'f', 2), '0.12'); // exactly halfway: even
    assert.equal(formatFloat(0.375, 'f', 2), '0.38');
    assert.equal(formatFloat(2.5, 'f', 0), '2');
    assert.equal(formatFloat(0.1, 'f', 20), '0.10000000000000000555'); // the double's exact digits
    assert.equal(formatFloat(1.005, 'f', 2), '1.00'); // 1.005 is 1.00499999999999989...
    assert.equal(formatFloat(9.5, 'e', 0), '1e+01');
    assert.equal(formatFloat(0, 'e', 3), '0.000e+00');
    assert.equal(formatFloat(-0, 'g', -1), '-0');
  });

  it("prints Rego values as OPA's ast String(): keys in byte order, Go quoting", () => {
    assert.equal(regoText({ 'é': 1, z: 2, A: [true, null] }), '{"A": [true, null], "z": 2, "é": 1}');
    assert.equal(regoText([]), '[]');
    assert.equal(regoText({}), '{}');
    assert.equal(goQuote('\u0000\u007f\ufeff日'), '"\\x00\\x7f\\ufeff日"');
    assert.equal(goQuote('é', true), '"\\u00e9"');
  });
});
