/**
 * A small parser for the Prometheus text exposition format (0.0.4), so tests
 * assert on sample values by name and labels instead of grepping strings.
 * Handles HELP/TYPE lines, escaped label values, +Inf/-Inf/NaN and optional
 * timestamps (special values case-insensitive); enough for prom-client's output and regate's admin endpoint.
 */

import type { Registry } from 'prom-client';

/** One sample line. */
export interface Sample {
  /** Sample name as exposed (`regate_requests_total`, `..._bucket`, `..._sum`). */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  /** OpenMetrics only: the exemplar written after the sample (` # {trace_id="…"} value timestamp`). */
  readonly exemplar?: ParsedExemplar;
}

/** An OpenMetrics exemplar. */
export interface ParsedExemplar {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  /** Seconds since the epoch; undefined when the exemplar has none. */
  readonly timestamp?: number;
}

/** A parsed exposition. */
export interface Exposition {
  readonly samples: readonly Sample[];
  /** Family name → `counter` | `gauge` | `histogram` | ... */
  readonly types: ReadonlyMap<string, string>;
  /** Family name → help text (unescaped). */
  readonly help: ReadonlyMap<string, string>;
}

/** Parse exposition text. Throws on a line it does not understand: a broken exposition is a test failure. */
export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!;
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ?(.*)$/.exec(line);
      if (m === null) continue; // a plain comment
      if (m[1] === 'TYPE') types.set(m[2]!, m[3]!);
      else help.set(m[2]!, m[3]!.replace(/\\(n|\\)/g, (_, c: string) => (c === 'n' ? '\n' : '\\')));
      continue;
    }
    samples.push(parseSample(line, n + 1));
  }
  return { samples, types, help };
}

function parseSample(line: string, lineNo: number): Sample {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (nameMatch === null) throw new SyntaxError(`exposition line ${lineNo}: no metric name: ${line}`);
  const name = nameMatch[0];
  let i = name.length;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    while (line[i] !== '}') {
      const key = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
      if (key === null || line[i + key[0].length] !== '=' || line[i + key[0].length + 1] !== '"') {
        throw new SyntaxError(`exposition line ${lineNo}: bad label at ${i}: ${line}`);
      }
      i += key[0].length + 2;
      let value = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) throw new SyntaxError(`exposition line ${lineNo}: unterminated label value: ${line}`);
        i++;
        if (c === '"') break;
        if (c === '\\') {
          const e = line[i++];
          value += e === 'n' ? '\n' : e === '\\' ? '\\' : e === '"' ? '"' : `\\${e ?? ''}`;
        } else {
          value += c;
        }
      }
      labels[key[0]] = value;
      if (line[i] === ',') i++;
    }
    i++;
  }
  const rest = line.slice(i).trim().split(/\s+/);
  const raw = rest[0];
  if (raw === undefined || raw === '') throw new SyntaxError(`exposition line ${lineNo}: no value: ${line}`);
  // Case-insensitive like Go's strconv.ParseFloat, which Prometheus uses: prom-client writes `Nan`.
  const special = raw.toLowerCase();
  const value = special === '+inf' || special === 'inf' ? Infinity : special === '-inf' ? -Infinity : special === 'nan' ? NaN : Number(raw);
  if (Number.isNaN(value) && special !== 'nan') throw new SyntaxError(`exposition line ${lineNo}: bad value ${raw}`);
  return { name, labels, value };
}

/**
 * An exemplar per OpenMetrics 1.0: `{labels} value [timestamp]`, only on a
 * histogram's `_bucket` or a counter's `_total`, label set at most 128
 * UTF-8 characters, a bucket's exemplar value within the bucket (≤ le).
 */
function parseExemplar(text: string, sample: Sample, type: string, lineNo: number): ParsedExemplar {
  const where = `OpenMetrics line ${lineNo}: exemplar`;
  if (!((type === 'histogram' && sample.name.endsWith('_bucket')) || (type === 'counter' && sample.name.endsWith('_total')))) {
    throw new SyntaxError(`${where} on ${sample.name}, which may not carry one`);
  }
  const close = text.indexOf('}');
  if (!text.startsWith('{') || close === -1) throw new SyntaxError(`${where}: no label set: ${text}`);
  const parsed = parseSample(`x${text.slice(0, close + 1)} 0`, lineNo);
  const labelChars = Object.entries(parsed.labels).reduce((n, [k, v]) => n + [...k].length + [...v].length, 0);
  if (labelChars > 128) throw new SyntaxError(`${where}: label set of ${labelChars} characters (at most 128)`);
  const rest = text.slice(close + 1).split(' ');
  if (rest[0] !== '' || rest.length < 2 || rest.length > 3) throw new SyntaxError(`${where}: want " value [timestamp]" after the labels: ${text}`);
  const value = Number(rest[1]);
  if (rest[1] === '' || !Number.isFinite(value)) throw new SyntaxError(`${where}: bad value ${rest[1]}`);
  const timestamp = rest[2] === undefined ? undefined : Number(rest[2]);
  if (timestamp !== undefined && (rest[2] === '' || !Number.isFinite(timestamp))) throw new SyntaxError(`${where}: bad timestamp ${rest[2]}`);
  if (type === 'histogram') {
    const le = sample.labels.le === '+Inf' ? Infinity : Number(sample.labels.le);
    if (!(value <= le)) throw new SyntaxError(`${where}: value ${value} is not within its bucket le=${sample.labels.le}`);
  }
  return { labels: parsed.labels, value, ...(timestamp !== undefined ? { timestamp } : {}) };
}

/** All samples called `name`. */
export function samplesOf(exp: Exposition, name: string): Sample[] {
  return exp.samples.filter((s) => s.name === name);
}

/** The value of the sample with exactly these labels (no more, no fewer); undefined if absent. */
export function sampleValue(exp: Exposition, name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  const want = Object.entries(labels);
  for (const s of exp.samples) {
    if (s.name !== name) continue;
    const have = Object.keys(s.labels);
    if (have.length === want.length && want.every(([k, v]) => s.labels[k] === v)) return s.value;
  }
  return undefined;
}

/** Distinct values a label takes across the samples of `name`. */
export function labelValues(exp: Exposition, name: string, label: string): Set<string> {
  const values = new Set<string>();
  for (const s of samplesOf(exp, name)) {
    const v = s.labels[label];
    if (v !== undefined) values.add(v);
  }
  return values;
}

/** Render a registry and parse it. */
export async function scrape(registry: Registry): Promise<Exposition> {
  return parseExposition(await registry.metrics());
}

/** Sample-name suffixes OpenMetrics 1.0 allows per family type ("" is the family name itself). */
const OPENMETRICS_SUFFIXES: Readonly<Record<string, readonly string[]>> = {
  counter: ['_total', '_created'],
  gauge: [''],
  histogram: ['_bucket', '_sum', '_count', '_created'],
  summary: ['', '_sum', '_count', '_created'],
  info: ['_info'],
  stateset: [''],
  unknown: [''],
};

/**
 * Parse an OpenMetrics 1.0 exposition, enforcing the rules a text-format
 * parser does not: it ends with `# EOF` and nothing after, no blank lines,
 * every sample belongs to the family whose TYPE precedes it with a suffix
 * that type allows, a family appears in one block only, and every histogram
 * series has a `+Inf` bucket equal to its `_count`. Throws on any violation.
 * Families are keyed by their OpenMetrics name (a counter's without `_total`).
 */
export function parseOpenMetrics(text: string): Exposition {
  if (!text.endsWith('# EOF\n')) throw new SyntaxError('OpenMetrics: the exposition does not end with "# EOF\\n"');
  const lines = text.slice(0, -'# EOF\n'.length).split('\n');
  if (lines.at(-1) === '') lines.pop();
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  let family: string | undefined;
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!;
    if (line === '') throw new SyntaxError(`OpenMetrics line ${n + 1}: blank lines are not allowed`);
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE|UNIT) ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: (.*))?$/.exec(line);
      if (m === null) throw new SyntaxError(`OpenMetrics line ${n + 1}: not a HELP/TYPE/UNIT line: ${line}`);
      const name = m[2]!;
      if (name !== family) {
        if (seen.has(name)) throw new SyntaxError(`OpenMetrics line ${n + 1}: family ${name} appears twice`);
        seen.add(name);
        family = name;
      }
      if (m[1] === 'TYPE') {
        if (!(m[3]! in OPENMETRICS_SUFFIXES)) throw new SyntaxError(`OpenMetrics line ${n + 1}: unknown type ${m[3]}`);
        if (m[3] === 'counter' && name.endsWith('_total')) throw new SyntaxError(`OpenMetrics line ${n + 1}: counter family ${name} must not end in _total`);
        types.set(name, m[3]!);
      } else if (m[1] === 'HELP') help.set(name, m[3] ?? '');
      continue;
    }
    // An exemplar (` # {...} value [ts]`) follows the sample; the sample itself is parsed as usual.
    const hash = line.indexOf(' # {');
    const sample = parseSample(hash === -1 ? line : line.slice(0, hash), n + 1);
    const type = family === undefined ? undefined : types.get(family);
    if (family === undefined || type === undefined) throw new SyntaxError(`OpenMetrics line ${n + 1}: sample ${sample.name} without a TYPE`);
    if (!OPENMETRICS_SUFFIXES[type]!.some((suffix) => sample.name === family + suffix)) {
      throw new SyntaxError(`OpenMetrics line ${n + 1}: sample ${sample.name} does not belong to ${type} family ${family}`);
    }
    samples.push(hash === -1 ? sample : { ...sample, exemplar: parseExemplar(line.slice(hash + 3), sample, type, n + 1) });
  }
  for (const [name, type] of types) {
    if (type !== 'histogram') continue;
    for (const count of samples.filter((s) => s.name === `${name}_count`)) {
      const want = Object.entries(count.labels);
      const inf = samples.find((s) => s.name === `${name}_bucket` && s.labels.le === '+Inf' && want.every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === want.length + 1);
      if (inf === undefined || inf.value !== count.value) throw new SyntaxError(`OpenMetrics: histogram ${name}${JSON.stringify(count.labels)} lacks a +Inf bucket equal to its _count`);
    }
  }
  return { samples, types, help };
}
