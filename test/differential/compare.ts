/**
 * Run the same cases through regate's engine and through OPA, and classify
 * each pair of outcomes: agree, ordering-only (equal once every array is
 * sorted: Rego sets travel as arrays), or a semantic mismatch.
 */

import type { WasmPolicyEngine } from '../../src/policy/wasm.ts';
import type { OpaOutcome, OpaServer } from './opa-server.ts';

export type Outcome = OpaOutcome;

/** One case: the input as a value for regate and as the exact JSON text both sides see. */
export interface Case {
  readonly label: string;
  readonly input: unknown;
  readonly text: string;
}

export interface Difference {
  readonly entrypoint: string;
  readonly label: string;
  readonly input: string;
  readonly regate: string;
  readonly opa: string;
}

/** A documented difference (README "Known differences from OPA"): which mismatches it explains. */
export interface KnownDifference {
  readonly id: string;
  applies(d: Difference): boolean;
}

export interface Report {
  cases: number;
  agree: number;
  /** Mismatches explained by a {@link KnownDifference}, by its id. */
  readonly known: Record<string, number>;
  /** How many cases held a lone UTF-16 surrogate (classified like any other: OPA reads it as U+FFFD). */
  surrogateCases: number;
  readonly orderingOnly: Difference[];
  readonly mismatches: Difference[];
}

export function emptyReport(): Report {
  return { cases: 0, agree: 0, known: {}, surrogateCases: 0, orderingOnly: [], mismatches: [] };
}

/** Deterministic text of a JSON value: object keys sorted; arrays sorted too when `unordered`. */
export function canonical(v: unknown, unordered = false): string {
  if (typeof v === 'bigint') return v.toString();
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'undefined';
  if (Array.isArray(v)) {
    const items = v.map((x) => canonical(x, unordered));
    if (unordered) items.sort();
    return `[${items.join(',')}]`;
  }
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k], unordered)}`).join(',')}}`;
}

function show(o: Outcome): string {
  return o.kind === 'result' ? canonical(o.value) : o.kind === 'error' ? `error: ${o.message}` : 'undefined';
}

/** regate's outcome for one case, in OPA's terms. */
export function regateOutcome(engine: WasmPolicyEngine, entrypoint: string, input: unknown, nowNs: bigint): Outcome {
  try {
    const rs = engine.evaluateRaw(entrypoint, input, nowNs);
    if (rs.length === 0) return { kind: 'undefined' };
    if (rs.length !== 1 || !Object.hasOwn(rs[0] as object, 'result')) return { kind: 'error', message: `unexpected result set ${canonical(rs)}` };
    return { kind: 'result', value: rs[0]?.result };
  } catch (err) {
    return { kind: 'error', message: (err as Error).message };
  }
}

// A lone surrogate as a JSON escape or a raw code unit.
const LONE_SURROGATE = /\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/i;

/** WebAssembly traps: the instance is damaged, whatever OPA said. */
const ENGINE_FAULT = /memory access out of bounds|unreachable|call stack/;

/** Classify one pair of outcomes into the report. */
export function record(report: Report, entrypoint: string, c: Case, mine: Outcome, theirs: Outcome, known: readonly KnownDifference[] = []): void {
  report.cases++;
  if (LONE_SURROGATE.test(c.text)) report.surrogateCases++;
  // A trap inside the wasm module is a broken engine, never agreement with an OPA error.
  const fault = mine.kind === 'error' && ENGINE_FAULT.test(mine.message);
  const same =
    !fault && mine.kind === theirs.kind && (mine.kind !== 'result' || canonical(mine.value) === canonical((theirs as { value: unknown }).value));
  if (same) {
    report.agree++;
    return;
  }
  const diff: Difference = { entrypoint, label: c.label, input: c.text.length > 600 ? `${c.text.slice(0, 600)}…` : c.text, regate: show(mine), opa: show(theirs) };
  if (fault) report.mismatches.push(diff);
  else if (mine.kind === 'result' && theirs.kind === 'result' && canonical(mine.value, true) === canonical(theirs.value, true)) report.orderingOnly.push(diff);
  else {
    const k = known.find((x) => x.applies(diff));
    if (k) report.known[k.id] = (report.known[k.id] ?? 0) + 1;
    else report.mismatches.push(diff);
  }
}

/**
 * Evaluate every case on both sides (up to `parallel` OPA queries in flight;
 * regate's engine is synchronous) and return the report.
 */
export async function runDifferential(
  engine: WasmPolicyEngine,
  opa: OpaServer,
  entrypoint: string,
  cases: readonly Case[],
  nowNs: bigint,
  report: Report = emptyReport(),
  known: readonly KnownDifference[] = [],
  parallel = 6,
): Promise<Report> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < cases.length) {
      const c = cases[next++] as Case;
      const theirs = await opa.query(entrypoint, c.text);
      record(report, entrypoint, c, regateOutcome(engine, entrypoint, c.input, nowNs), theirs, known);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return report;
}

/** A human summary: counts, then the first few differences of each class. */
export function summarize(name: string, r: Report, limit = 8): string {
  const known = Object.entries(r.known).map(([id, n]) => `${id}=${n}`).join(' ');
  const lines = [
    `${name}: ${r.cases} cases, ${r.agree} agree, ${r.mismatches.length} mismatches, ${r.orderingOnly.length} ordering-only (${r.surrogateCases} cases with a lone surrogate)${known ? `, known differences: ${known}` : ''}`,
  ];
  for (const [title, list] of [['mismatch', r.mismatches], ['ordering-only', r.orderingOnly]] as const) {
    for (const d of list.slice(0, limit)) lines.push(`  ${title} ${d.entrypoint} [${d.label}]\n    input:  ${d.input}\n    regate: ${d.regate}\n    opa:    ${d.opa}`);
  }
  return lines.join('\n');
}

/** Cases per policy / builtin: `REGATE_DIFF_CASES` (the long mode), else `fallback`. */
export function caseCount(fallback: number): number {
  const n = Number(process.env.REGATE_DIFF_CASES);
  return Number.isSafeInteger(n) && n > 0 ? n : fallback;
}
