/** The shared control words of the decision log's ring (src/observe/log-ring.ts) and its writer thread. */

/** Indexes into the control `Int32Array`. */
export const CTL = {
  /** Next byte the producer (request path) writes; only it stores this. */
  HEAD: 0,
  /** Next byte the writer thread writes out; only it stores this. */
  TAIL: 1,
  /** 1 while the writer thread sleeps on HEAD: the producer then wakes it. */
  WAITING: 2,
  /** 1: write out what is left, close, exit. */
  CLOSING: 3,
} as const;
export const CONTROL_WORDS = 4;

/** The writer thread looks at the ring at least this often even when not woken (ms). */
export const WAKE_MS = 1000;

/** What the writer thread is started with. */
export interface RingWorkerData {
  readonly control: SharedArrayBuffer;
  readonly ring: SharedArrayBuffer;
  /** `stdout`, `stderr` or a file path (appended to; parent directories created). */
  readonly destination: string;
}
