/**
 * Decision-log output as records (pino's `test/helper.js` idea): tests assert
 * on parsed objects, never on substrings of a line.
 *
 * Parsing keeps integers exact: a JSON integer outside the safe range becomes
 * a `bigint` (via the reviver's source text), so a test can compare
 * `input.time.now_ns` with the bigint that went in, digit for digit.
 */

import { readFile } from 'node:fs/promises';

/** One parsed line. */
export type LogRecord = Record<string, unknown>;

type Reviver = (key: string, value: unknown, context: { source?: string }) => unknown;

/** JSON.parse with `context.source` (Node ≥ 21): unsafe integers → bigint, exactly. */
const exactIntegers: Reviver = (_key, value, context) => {
  if (typeof value === 'number' && !Number.isSafeInteger(value) && context.source !== undefined && /^-?\d+$/.test(context.source)) {
    return BigInt(context.source);
  }
  return value;
};

/** Parse one line. Throws if it is not one JSON object: a broken line is a test failure. */
export function parseLogLine(line: string): LogRecord {
  const value: unknown = (JSON.parse as (text: string, reviver: Reviver) => unknown)(line, exactIntegers);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SyntaxError(`log line is not a JSON object: ${line}`);
  }
  return value as LogRecord;
}

/** Parse newline-delimited JSON; blank lines are skipped. */
export function parseLog(text: string): LogRecord[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map(parseLogLine);
}

/** Read and parse a decision-log file. */
export async function readLogFile(path: string): Promise<LogRecord[]> {
  return parseLog(await readFile(path, 'utf8'));
}

/** An in-memory pino destination that keeps every line and its parsed record. */
export interface LogSink {
  /** Pass as `createDecisionLog(..., { stream })`. pino writes synchronously to it. */
  readonly stream: { write(chunk: string): void };
  /** Raw lines, without the newline. */
  readonly lines: string[];
  /** Parsed records, in order. */
  readonly records: LogRecord[];
  /** The only record; fails when there is not exactly one (one line per request). */
  only(): LogRecord;
}

/** Create an in-memory sink. */
export function createLogSink(): LogSink {
  const lines: string[] = [];
  const records: LogRecord[] = [];
  let partial = '';
  return {
    stream: {
      write(chunk: string): void {
        partial += chunk;
        let nl: number;
        while ((nl = partial.indexOf('\n')) !== -1) {
          const line = partial.slice(0, nl);
          partial = partial.slice(nl + 1);
          lines.push(line);
          records.push(parseLogLine(line));
        }
      },
    },
    lines,
    records,
    only(): LogRecord {
      if (records.length !== 1) throw new Error(`expected exactly one log record, got ${records.length}`);
      return records[0]!;
    },
  };
}
