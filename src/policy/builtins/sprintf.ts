/**
 * `sprintf` as OPA computes it: Go's `fmt.Sprintf` over Rego values converted
 * the way OPA's `builtinSprintf` (topdown/strings.go) converts them.
 *
 * The opa-wasm SDK ships a JavaScript `sprintf` (sprintf-js) whose output
 * differs from Go's for most non-string arguments (`%s` of 0 is `0`, Go says
 * `%!s(int64=0)`; `%v` of an array is `1,2`, OPA says `[1, 2]`), so policies
 * that build reason strings decided differently under `opa test` and under
 * regate. This module replaces it (see index.ts).
 *
 * Argument conversion (OPA): a number that `json.Number.Int64` accepts is an
 * `int64`; else an integer `big.Int.SetString` accepts is a `*big.Int`; else
 * one `ParseFloat` accepts (not out of range) is a `float64`; any other number
 * is its text as a `string`. Strings are Go strings; every other value
 * (boolean, null, array, object, set) is its Rego text (`[1, "a"]`) as a string.
 *
 * Formatting follows Go's `fmt` (print.go `doPrintf`, format.go): flags
 * `#0+- `, width and precision (also `*` and `[n]` argument indexes), verbs
 * `v d b o O x X c q U e E f F g G s T` and the error forms `%!v(MISSING)`,
 * `%!v(BADINDEX)`, `%!(EXTRA ...)`, `%!(NOVERB)`, `%!(BADWIDTH)`, `%!(BADPREC)`,
 * `%!d(string=x)`.
 */

import { RegoNumber } from '../number-text.ts';
import { operandTypeError } from './operands.ts';

type GoValue =
  | { readonly type: 'int64'; readonly v: bigint }
  | { readonly type: '*big.Int'; readonly v: bigint }
  | { readonly type: 'float64'; readonly v: number }
  | { readonly type: 'string'; readonly v: string };

const MIN_INT64 = -(1n << 63n);
const MAX_INT64 = (1n << 63n) - 1n;
const INTEGER = /^-?[0-9]+$/;

/** Go's `strconv.Quote` (`ascii`: `QuoteToASCII`). */
export function goQuote(s: string, ascii = false, quote = '"'): string {
  let out = quote;
  for (const ch of s) {
    let cp = ch.codePointAt(0) as number;
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd; // a lone surrogate is U+FFFD once in UTF-8
    const c = String.fromCodePoint(cp);
    if (c === quote || c === '\\') out += `\\${c}`;
    else if (cp >= 0x20 && cp < 0x7f) out += c;
    else if (cp < 0x80) out += ESCAPES.get(c) ?? `\\x${cp.toString(16).padStart(2, '0')}`;
    else if (!ascii && GO_PRINTABLE.test(c)) out += c;
    else out += cp < 0x10000 ? `\\u${cp.toString(16).padStart(4, '0')}` : `\\U${cp.toString(16).padStart(8, '0')}`;
  }
  return out + quote;
}
const ESCAPES = new Map([['\x07', '\\a'], ['\b', '\\b'], ['\f', '\\f'], ['\n', '\\n'], ['\r', '\\r'], ['\t', '\\t'], ['\v', '\\v']]);
/** Go's `unicode.IsPrint` outside ASCII: letters, marks, numbers, punctuation, symbols. */
const GO_PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

const utf8 = new TextEncoder();

/** Go's byte-wise string order (UTF-8), which is how OPA sorts object keys. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** A Rego value's text, as OPA's `ast.Term.String()` prints it. Sets arrive as arrays (wasm ABI). */
export function regoText(v: unknown): string {
  if (typeof v === 'string') return goQuote(v);
  if (v instanceof RegoNumber) return v.text;
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (Array.isArray(v)) return `[${v.map(regoText).join(', ')}]`;
  if (typeof v === 'object') {
    const entries = Object.entries(v).sort(([a], [b]) => compareUtf8(a, b));
    return `{${entries.map(([k, x]) => `${goQuote(k)}: ${regoText(x)}`).join(', ')}}`;
  }
  return String(v);
}

/** OPA's conversion of one `sprintf` argument to a Go value. */
function goValue(v: unknown): GoValue {
  if (typeof v === 'string') return { type: 'string', v };
  const text = v instanceof RegoNumber ? v.text : typeof v === 'number' || typeof v === 'bigint' ? String(v) : undefined;
  if (text === undefined) return { type: 'string', v: regoText(v) };
  if (INTEGER.test(text)) {
    const i = BigInt(text);
    return i >= MIN_INT64 && i <= MAX_INT64 ? { type: 'int64', v: i } : { type: '*big.Int', v: i };
  }
  const f = Number(text);
  return Number.isFinite(f) ? { type: 'float64', v: f } : { type: 'string', v: text };
}

interface Flags {
  plus: boolean;
  minus: boolean;
  sharp: boolean;
  space: boolean;
  zero: boolean;
  plusV: boolean;
  sharpV: boolean;
  wid: number;
  widPresent: boolean;
  prec: number;
  precPresent: boolean;
}

function clearFlags(f: Flags): void {
  f.plus = f.minus = f.sharp = f.space = f.zero = f.plusV = f.sharpV = false;
  f.wid = f.prec = 0;
  f.widPresent = f.precPresent = false;
}

const runeCount = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

/** One `fmt.Sprintf` call's printer state (Go's `pp` + `fmt`). */
class Printer {
  out = '';
  readonly f: Flags = { plus: false, minus: false, sharp: false, space: false, zero: false, plusV: false, sharpV: false, wid: 0, widPresent: false, prec: 0, precPresent: false };
  arg: GoValue | undefined;

  padding(n: number): string {
    if (n <= 0) return '';
    return (this.f.zero && !this.f.minus ? '0' : ' ').repeat(n);
  }

  pad(s: string): void {
    const f = this.f;
    if (!f.widPresent || f.wid === 0) {
      this.out += s;
      return;
    }
    const p = this.padding(f.wid - runeCount(s));
    this.out += f.minus ? s + p : p + s;
  }

  /** Pad without zeros (Go sets `f.zero = false` around these calls). */
  padSpaces(s: string): void {
    const zero = this.f.zero;
    this.f.zero = false;
    this.pad(s);
    this.f.zero = zero;
  }

  truncate(s: string): string {
    if (!this.f.precPresent) return s;
    let n = this.f.prec;
    let i = 0;
    for (const ch of s) {
      if (n-- <= 0) return s.slice(0, i);
      i += ch.length;
    }
    return s;
  }

  badVerb(verb: string): void {
    this.out += `%!${verb}(`;
    const arg = this.arg;
    if (arg !== undefined) {
      this.out += `${arg.type}=`;
      this.printArg(arg, 'v');
    } else {
      this.out += '<nil>';
    }
    this.out += ')';
  }

  printArg(arg: GoValue, verb: string): void {
    this.arg = arg;
    if (verb === 'T') {
      this.pad(this.truncate(arg.type));
      return;
    }
    if (verb === 'p') {
      this.badVerb(verb);
      return;
    }
    switch (arg.type) {
      case 'int64':
        this.fmtInteger(arg.v, verb);
        return;
      case 'float64':
        this.fmtFloatVerb(arg.v, verb);
        return;
      case 'string':
        this.fmtString(arg.v, verb);
        return;
      case '*big.Int':
        this.fmtBigInt(arg.v, verb);
        return;
    }
  }

  // --- integers (int64) ---

  fmtInteger(v: bigint, verb: string): void {
    switch (verb) {
      case 'v':
      case 'd':
        this.integer(v, 10, verb, false);
        return;
      case 'b':
        this.integer(v, 2, verb, false);
        return;
      case 'o':
      case 'O':
        this.integer(v, 8, verb, false);
        return;
      case 'x':
        this.integer(v, 16, verb, false);
        return;
      case 'X':
        this.integer(v, 16, verb, true);
        return;
      case 'c':
        this.padSpaces(String.fromCodePoint(rune(v)));
        return;
      case 'q': {
        const r = rune(v);
        this.padSpaces(goQuote(String.fromCodePoint(r), this.f.plus, "'"));
        return;
      }
      case 'U':
        this.fmtUnicode(v < 0n ? v + (1n << 64n) : v);
        return;
      default:
        this.badVerb(verb);
    }
  }

  /** Go's `fmt.fmtInteger`. */
  integer(v: bigint, base: number, verb: string, upper: boolean): void {
    const f = this.f;
    const negative = v < 0n;
    const u = negative ? -v : v;
    let prec = 0;
    if (f.precPresent) {
      prec = f.prec;
      if (prec === 0 && u === 0n) {
        const zero = f.zero;
        f.zero = false;
        this.out += this.padding(f.wid);
        f.zero = zero;
        return;
      }
    } else if (f.zero && !f.minus && f.widPresent) {
      prec = f.wid;
      if (negative || f.plus || f.space) prec--;
    }
    let digits = u.toString(base);
    if (upper) digits = digits.toUpperCase();
    if (digits.length < prec) digits = '0'.repeat(prec - digits.length) + digits;
    if (f.sharp) {
      if (base === 2) digits = `0b${digits}`;
      else if (base === 8 && digits[0] !== '0') digits = `0${digits}`;
      else if (base === 16) digits = (upper ? '0X' : '0x') + digits;
    }
    if (verb === 'O') digits = `0o${digits}`;
    if (negative) digits = `-${digits}`;
    else if (f.plus) digits = `+${digits}`;
    else if (f.space) digits = ` ${digits}`;
    this.padSpaces(digits);
  }

  fmtUnicode(u: bigint): void {
    const f = this.f;
    let s = u.toString(16).toUpperCase();
    const prec = f.precPresent && f.prec > 4 ? f.prec : 4;
    if (s.length < prec) s = '0'.repeat(prec - s.length) + s;
    s = `U+${s}`;
    if (f.sharp && u <= 0x10ffffn && !(u >= 0xd800n && u <= 0xdfffn)) {
      const c = String.fromCodePoint(Number(u));
      if ((u >= 0x20n && u < 0x7fn) || (u >= 0x80n && GO_PRINTABLE.test(c))) s += ` '${c}'`;
    }
    this.padSpaces(s);
  }

  // --- *big.Int: math/big's Format ---

  fmtBigInt(x: bigint, verb: string): void {
    const f = this.f;
    let base: number;
    switch (verb) {
      case 'b':
        base = 2;
        break;
      case 'o':
      case 'O':
        base = 8;
        break;
      case 'd':
      case 's':
      case 'v':
        base = 10;
        break;
      case 'x':
      case 'X':
        base = 16;
        break;
      default:
        this.out += `%!${verb}(big.Int=${x.toString()})`;
        return;
    }
    const sharp = f.sharp || f.sharpV;
    const plus = f.plus || f.plusV;
    const sign = x < 0n ? '-' : plus ? '+' : f.space ? ' ' : '';
    let prefix = '';
    if (sharp) prefix = verb === 'b' ? '0b' : verb === 'o' ? '0' : verb === 'x' ? '0x' : verb === 'X' ? '0X' : '';
    if (verb === 'O') prefix = '0o';
    let digits = (x < 0n ? -x : x).toString(base);
    if (verb === 'X') digits = digits.toUpperCase();
    let left = 0;
    let zeros = 0;
    let right = 0;
    if (f.precPresent) {
      if (digits.length < f.prec) zeros = f.prec - digits.length;
      else if (digits === '0' && f.prec === 0) return;
    }
    const length = sign.length + prefix.length + zeros + digits.length;
    if (f.widPresent && length < f.wid) {
      const d = f.wid - length;
      if (f.minus) right = d;
      else if (f.zero && !f.precPresent) zeros = d;
      else left = d;
    }
    this.out += ' '.repeat(left) + sign + prefix + '0'.repeat(zeros) + digits + ' '.repeat(right);
  }

  // --- strings ---

  fmtString(s: string, verb: string): void {
    const f = this.f;
    switch (verb) {
      case 'v':
        if (f.sharpV) this.fmtQ(s);
        else this.pad(this.truncate(s));
        return;
      case 's':
        this.pad(this.truncate(s));
        return;
      case 'x':
        this.fmtSx(s, false);
        return;
      case 'X':
        this.fmtSx(s, true);
        return;
      case 'q':
        this.fmtQ(s);
        return;
      default:
        this.badVerb(verb);
    }
  }

  fmtQ(s: string): void {
    const t = this.truncate(s);
    // strconv.CanBackquote: no control characters but tab, no backquote, no U+FEFF, valid UTF-8.
    if (this.f.sharp && !/[\x00-\x08\x0a-\x1f\x7f`\ufeff\ud800-\udfff]/.test(t)) {
      this.pad(`\`${t}\``);
      return;
    }
    this.pad(goQuote(t, this.f.plus));
  }

  fmtSx(s: string, upper: boolean): void {
    const f = this.f;
    const bytes = utf8.encode(s);
    let length = bytes.length;
    if (f.precPresent && f.prec < length) length = f.prec;
    let width = 2 * length;
    if (width > 0) {
      if (f.space) {
        if (f.sharp) width *= 2;
        width += length - 1;
      } else if (f.sharp) {
        width += 2;
      }
    } else {
      if (f.widPresent) this.out += this.padding(f.wid);
      return;
    }
    if (f.widPresent && f.wid > width && !f.minus) this.out += this.padding(f.wid - width);
    const x = upper ? '0X' : '0x';
    let out = f.sharp ? x : '';
    for (let i = 0; i < length; i++) {
      if (f.space && i > 0) out += f.sharp ? ` ${x}` : ' ';
      const h = (bytes[i] as number).toString(16).padStart(2, '0');
      out += upper ? h.toUpperCase() : h;
    }
    this.out += out;
    if (f.widPresent && f.wid > width && f.minus) this.out += this.padding(f.wid - width);
  }

  // --- floats ---

  fmtFloatVerb(v: number, verb: string): void {
    switch (verb) {
      case 'v':
        this.fmtFloat(v, 'g', -1);
        return;
      case 'b':
      case 'g':
      case 'G':
      case 'x':
      case 'X':
        this.fmtFloat(v, verb, -1);
        return;
      case 'f':
      case 'e':
      case 'E':
      case 'F':
        this.fmtFloat(v, verb === 'F' ? 'f' : verb, 6);
        return;
      default:
        this.badVerb(verb);
    }
  }

  /** Go's `fmt.fmtFloat`. */
  fmtFloat(v: number, verb: string, defaultPrec: number): void {
    const f = this.f;
    const prec = f.precPresent ? f.prec : defaultPrec;
    let num = formatFloat(v, verb, prec);
    num = num[0] === '-' || num[0] === '+' ? num : `+${num}`;
    if (f.space && num[0] === '+' && !f.plus) num = ` ${num.slice(1)}`;
    if (f.sharp && verb !== 'b') {
      let digits = 0;
      if (verb === 'v' || verb === 'g' || verb === 'G' || verb === 'x') digits = prec === -1 ? 6 : prec;
      let tail = '';
      let hasDot = false;
      let sawNonzero = false;
      for (let i = 1; i < num.length; i++) {
        const c = num[i] as string;
        if (c === '.') {
          hasDot = true;
        } else if (c === 'p' || c === 'P' || ((c === 'e' || c === 'E') && verb !== 'x' && verb !== 'X')) {
          tail = num.slice(i);
          num = num.slice(0, i);
          break;
        } else {
          if (c !== '0') sawNonzero = true;
          if (sawNonzero) digits--;
        }
      }
      if (!hasDot) {
        if (num.length === 2 && num[1] === '0') digits--;
        num += '.';
      }
      if (digits > 0) num += '0'.repeat(digits);
      num += tail;
    }
    if (f.plus || num[0] !== '+') {
      if (f.zero && !f.minus && f.widPresent && f.wid > num.length) {
        this.out += num[0] + this.padding(f.wid - num.length) + num.slice(1);
        return;
      }
      this.pad(num);
      return;
    }
    this.pad(num.slice(1));
  }
}

/** A Go `rune` from an int64 argument: out of range (or negative) is U+FFFD, surrogates too. */
function rune(v: bigint): number {
  if (v < 0n || v > 0x10ffffn) return 0xfffd;
  const r = Number(v);
  return r >= 0xd800 && r <= 0xdfff ? 0xfffd : r;
}

// --- strconv.FormatFloat for 'e', 'E', 'f', 'g', 'G', 'b', 'x', 'X' ---

const view = new DataView(new ArrayBuffer(8));

/** The double as sign, 53-bit mantissa and binary exponent: |v| = mant * 2^exp. */
function decompose(v: number): { neg: boolean; mant: bigint; exp: number } {
  view.setFloat64(0, v);
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const neg = hi >>> 31 === 1;
  const bexp = (hi >>> 20) & 0x7ff;
  let mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let exp: number;
  if (bexp === 0) exp = -1074;
  else {
    mant |= 1n << 52n;
    exp = bexp - 1075;
  }
  return { neg, mant, exp };
}

/** Exact decimal digits of |v| (no leading or trailing zeros) and the decimal point position. */
function exactDecimal(v: number): { d: string; dp: number } {
  const { mant, exp } = decompose(v);
  if (mant === 0n) return { d: '', dp: 0 };
  let d: string;
  let dp: number;
  if (exp >= 0) {
    d = (mant << BigInt(exp)).toString();
    dp = d.length;
  } else {
    d = (mant * 5n ** BigInt(-exp)).toString();
    dp = d.length + exp;
  }
  const trimmed = d.replace(/0+$/, '');
  return { d: trimmed, dp };
}

/** Shortest round-trip digits (what Go and JS both compute). */
function shortestDecimal(v: number): { d: string; dp: number } {
  if (v === 0) return { d: '', dp: 0 };
  const m = /^(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(Math.abs(v).toExponential()) as RegExpExecArray;
  const d = ((m[1] as string) + (m[2] ?? '')).replace(/0+$/, '');
  return { d, dp: Number(m[3]) + 1 };
}

/** Round decimal digits to `nd` digits, half to even on the exact value (Go's decimal.Round). */
function roundDecimal(x: { d: string; dp: number }, nd: number): { d: string; dp: number } {
  if (nd < 0 || nd >= x.d.length) return x;
  const next = x.d.charCodeAt(nd) - 48;
  // Exactly halfway rounds to even; otherwise the next digit decides.
  const up = next === 5 && nd + 1 === x.d.length ? nd > 0 && (x.d.charCodeAt(nd - 1) - 48) % 2 === 1 : next >= 5;
  let d = x.d.slice(0, nd);
  let dp = x.dp;
  if (up) {
    let i = d.length - 1;
    while (i >= 0 && d[i] === '9') i--;
    if (i < 0) {
      d = '1';
      dp++;
    } else {
      d = d.slice(0, i) + String.fromCharCode(d.charCodeAt(i) + 1);
    }
  }
  return { d: d.replace(/0+$/, ''), dp };
}

function fmtE(neg: boolean, x: { d: string; dp: number }, prec: number, e: string): string {
  let s = neg ? '-' : '';
  s += x.d.length === 0 ? '0' : x.d[0];
  if (prec > 0) {
    s += '.';
    const frac = x.d.slice(1, 1 + prec);
    s += frac + '0'.repeat(prec - frac.length);
  }
  let exp = x.d.length === 0 ? 0 : x.dp - 1;
  s += e;
  if (exp < 0) {
    s += '-';
    exp = -exp;
  } else s += '+';
  return s + (exp < 10 ? `0${exp}` : String(exp));
}

function fmtF(neg: boolean, x: { d: string; dp: number }, prec: number): string {
  let s = neg ? '-' : '';
  if (x.dp > 0) {
    const int = x.d.slice(0, x.dp);
    s += int + '0'.repeat(x.dp - int.length);
  } else s += '0';
  if (prec > 0) {
    s += '.';
    for (let i = 1; i <= prec; i++) {
      const j = x.dp + i - 1;
      s += j >= 0 && j < x.d.length ? x.d[j] : '0';
    }
  }
  return s;
}

/** Go's `strconv.FormatFloat(v, verb, prec, 64)` for a finite v. */
export function formatFloat(v: number, verb: string, prec: number): string {
  const { neg, mant, exp } = decompose(v);
  if (verb === 'b') return `${neg ? '-' : ''}${mant}p${exp >= 0 ? '+' : ''}${exp}`;
  if (verb === 'x' || verb === 'X') return formatHex(neg, mant, exp, prec, verb === 'X');
  const shortest = prec < 0;
  let x: { d: string; dp: number };
  if (shortest) {
    x = shortestDecimal(v);
    if (verb === 'e' || verb === 'E') prec = Math.max(x.d.length - 1, 0);
    else if (verb === 'f') prec = Math.max(x.d.length - x.dp, 0);
    else prec = x.d.length;
  } else {
    const exact = exactDecimal(v);
    if (verb === 'e' || verb === 'E') x = roundDecimal(exact, 1 + prec);
    else if (verb === 'f') x = roundDecimal(exact, exact.dp + prec);
    else {
      if (prec === 0) prec = 1;
      x = roundDecimal(exact, prec);
    }
  }
  if (verb === 'e' || verb === 'E') return fmtE(neg, x, prec, verb);
  if (verb === 'f') return fmtF(neg, x, prec);
  // 'g', 'G'
  let eprec = prec;
  if (eprec > x.d.length && x.d.length >= x.dp) eprec = x.d.length;
  if (shortest) eprec = 6;
  const e = x.dp - 1;
  if (e < -4 || e >= eprec) {
    if (prec > x.d.length) prec = x.d.length;
    return fmtE(neg, x, prec - 1, verb === 'G' ? 'E' : 'e');
  }
  if (prec > x.dp) prec = x.d.length;
  return fmtF(neg, x, Math.max(prec - x.dp, 0));
}

/** Go's `%x` of a float64: `-0x1.8p+00`, shortest hex digits or rounded to `prec` (half to even). */
function formatHex(neg: boolean, mant: bigint, exp: number, prec: number, upper: boolean): string {
  let m = mant;
  let e = exp;
  if (m === 0n) e = 0;
  else {
    // Normalize so the leading 1 is bit 60 (as Go's %x does: 1.xxxx with 15 hex digits).
    while (m < 1n << 60n) {
      m <<= 1n;
      e--;
    }
    e += 60;
  }
  if (prec >= 0 && prec < 15) {
    const shift = BigInt(4 * (15 - prec));
    const extra = m & ((1n << shift) - 1n);
    const half = 1n << (shift - 1n);
    m >>= shift;
    if (extra > half || (extra === half && (m & 1n) === 1n)) m++;
    m <<= shift;
    if (m >= 1n << 61n) {
      m >>= 1n;
      e++;
    }
  }
  let hex = (m & ((1n << 60n) - 1n)).toString(16).padStart(15, '0');
  hex = prec < 0 ? hex.replace(/0+$/, '') : hex.slice(0, prec) + '0'.repeat(Math.max(0, prec - 15));
  const lead = m === 0n ? '0' : '1';
  const sign = e < 0 ? '-' : '+';
  const ae = Math.abs(e);
  let s = `${neg ? '-' : ''}0x${lead}${hex ? `.${hex}` : ''}p${sign}${ae < 10 ? `0${ae}` : ae}`;
  if (upper) s = s.toUpperCase();
  return s;
}

// --- doPrintf ---

function parseNum(s: string, start: number, end: number): { num: number; isNum: boolean; next: number } {
  if (start >= end) return { num: 0, isNum: false, next: end };
  let num = 0;
  let isNum = false;
  let i = start;
  for (; i < end && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57; i++) {
    if (num > 1e6) return { num: 0, isNum: false, next: end };
    num = num * 10 + (s.charCodeAt(i) - 48);
    isNum = true;
  }
  return { num, isNum, next: i };
}

/**
 * Go's `fmt.Sprintf(format, args...)`. `format` is indexed by UTF-16 unit
 * where Go indexes bytes; every syntax character is ASCII, so the two agree.
 */
export function goSprintf(format: string, args: readonly GoValue[]): string {
  const p = new Printer();
  const f = p.f;
  const end = format.length;
  let argNum = 0;
  let afterIndex = false;
  let reordered = false;
  let goodArgNum = true;

  const argNumber = (i: number): { found: boolean; next: number } => {
    if (i >= end || format[i] !== '[') return { found: false, next: i };
    reordered = true;
    // parseArgNumber
    let ok = false;
    let index = 0;
    let wid = 1;
    if (end - i >= 3) {
      for (let j = i + 1; j < end; j++) {
        if (format[j] === ']') {
          const n = parseNum(format, i + 1, j);
          if (!n.isNum || n.next !== j) {
            wid = j - i + 1;
          } else {
            index = n.num - 1;
            wid = j - i + 1;
            ok = true;
          }
          break;
        }
      }
    }
    if (ok && index >= 0 && index < args.length) {
      argNum = index;
      return { found: true, next: i + wid };
    }
    goodArgNum = false;
    return { found: ok, next: i + wid };
  };

  const intFromArg = (): { num: number; isInt: boolean } => {
    let num = 0;
    let isInt = false;
    if (argNum < args.length) {
      const a = args[argNum] as GoValue;
      if (a.type === 'int64') {
        num = Number(a.v);
        isInt = true;
      }
      argNum++;
      if (num > 1e6 || num < -1e6) {
        num = 0;
        isInt = false;
      }
    }
    return { num, isInt };
  };

  let i = 0;
  while (i < end) {
    goodArgNum = true;
    const last = i;
    while (i < end && format[i] !== '%') i++;
    if (i > last) p.out += format.slice(last, i);
    if (i >= end) break;
    i++; // skip %
    clearFlags(f);
    let simple = false;
    for (; i < end; i++) {
      const c = format[i] as string;
      if (c === '#') f.sharp = true;
      else if (c === '0') f.zero = true;
      else if (c === '+') f.plus = true;
      else if (c === '-') f.minus = true;
      else if (c === ' ') f.space = true;
      else {
        if (c >= 'a' && c <= 'z' && argNum < args.length) {
          if (c === 'v') {
            f.sharpV = f.sharp;
            f.sharp = false;
            f.plusV = f.plus;
            f.plus = false;
          }
          p.printArg(args[argNum] as GoValue, c);
          argNum++;
          i++;
          simple = true;
        }
        break;
      }
    }
    if (simple) continue;

    let r = argNumber(i);
    i = r.next;
    afterIndex = r.found;

    if (i < end && format[i] === '*') {
      i++;
      const w = intFromArg();
      f.wid = w.num;
      f.widPresent = w.isInt;
      if (!f.widPresent) p.out += '%!(BADWIDTH)';
      if (f.wid < 0) {
        f.wid = -f.wid;
        f.minus = true;
        f.zero = false;
      }
      afterIndex = false;
    } else {
      const n = parseNum(format, i, end);
      f.wid = n.num;
      f.widPresent = n.isNum;
      i = n.next;
      if (afterIndex && f.widPresent) goodArgNum = false;
    }

    if (i + 1 < end && format[i] === '.') {
      i++;
      if (afterIndex) goodArgNum = false;
      r = argNumber(i);
      i = r.next;
      afterIndex = r.found;
      if (i < end && format[i] === '*') {
        i++;
        const w = intFromArg();
        f.prec = w.num;
        f.precPresent = w.isInt;
        if (f.prec < 0) {
          f.prec = 0;
          f.precPresent = false;
        }
        if (!f.precPresent) p.out += '%!(BADPREC)';
        afterIndex = false;
      } else {
        const n = parseNum(format, i, end);
        f.prec = n.num;
        f.precPresent = n.isNum;
        i = n.next;
        if (!f.precPresent) {
          f.prec = 0;
          f.precPresent = true;
        }
      }
    }

    if (!afterIndex) {
      r = argNumber(i);
      i = r.next;
      afterIndex = r.found;
    }

    if (i >= end) {
      p.out += '%!(NOVERB)';
      break;
    }

    const verb = String.fromCodePoint(format.codePointAt(i) as number);
    i += verb.length;

    if (verb === '%') p.out += '%';
    else if (!goodArgNum) p.out += `%!${verb}(BADINDEX)`;
    else if (argNum >= args.length) p.out += `%!${verb}(MISSING)`;
    else {
      if (verb === 'v') {
        f.sharpV = f.sharp;
        f.sharp = false;
        f.plusV = f.plus;
        f.plus = false;
      }
      p.printArg(args[argNum] as GoValue, verb);
      argNum++;
    }
  }

  if (!reordered && argNum < args.length) {
    clearFlags(f);
    p.out += '%!(EXTRA ';
    for (let k = argNum; k < args.length; k++) {
      if (k > argNum) p.out += ', ';
      const a = args[k] as GoValue;
      p.out += `${a.type}=`;
      p.printArg(a, 'v');
    }
    p.out += ')';
  }
  return p.out;
}

/**
 * The `sprintf` builtin over exact Rego values (numbers as
 * {@link RegoNumber}). Type errors are OPA's: `operand 1 must be string`,
 * `operand 2 must be array`.
 */
export function regoSprintf(format: unknown, values: unknown): string {
  if (typeof format !== 'string') throw operandTypeError('sprintf', 1, format, 'string');
  if (!Array.isArray(values)) throw operandTypeError('sprintf', 2, values, 'array');
  return goSprintf(format, values.map(goValue));
}
