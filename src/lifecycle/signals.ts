/**
 * Process signals → lifecycle actions, in one small function so that every
 * process model wires them the same way: a single regate process calls it
 * with its reload manager and shutdown; a cluster primary (one process per
 * core, each worker a full regate with its own reloads and shutdown) calls it
 * with actions that forward the signal to its workers.
 *
 * - SIGHUP: reload config and policy (the process keeps running whatever the outcome).
 * - SIGTERM, SIGINT: graceful shutdown. A second one while shutting down
 *   exits at once (a human pressing Ctrl-C twice; orchestrators send SIGKILL instead).
 *   The same signal again within {@link DUPLICATE_SIGNAL_MS} is one delivery seen twice,
 *   not a second request: Ctrl-C on `npm run regate -- serve` reaches regate both from
 *   the terminal (the process group) and from npm, which forwards it to its child.
 */

/** A repeat of the same stop signal within this long of the first is ignored. */
export const DUPLICATE_SIGNAL_MS = 1000;

/** What each signal does. */
export interface SignalActions {
  /** SIGHUP. Must not throw; a failed reload is the reloader's to report. */
  reload(): void;
  /** The first SIGTERM / SIGINT. */
  shutdown(signal: NodeJS.Signals): void;
  /** A second SIGTERM / SIGINT during shutdown. */
  forceExit(signal: NodeJS.Signals): void;
}

let startupHangup: { proc: NodeJS.Process; listener: () => void } | null = null;

/**
 * Until {@link handleSignals} is installed, ignore SIGHUP (Node's default
 * action would kill the process): an operator's or orchestrator's reload that
 * arrives while the config, bundle and keys are still loading is harmless —
 * the process is loading the files right now anyway.
 */
export function ignoreHangupDuringStartup(onIgnored: () => void, proc: NodeJS.Process = process): void {
  if (startupHangup) return;
  startupHangup = { proc, listener: onIgnored };
  proc.on('SIGHUP', onIgnored);
}

/** Install the handlers on `proc` (default `process`); returns a function that removes them. */
export function handleSignals(actions: SignalActions, proc: NodeJS.Process = process, now: () => number = () => performance.now()): () => void {
  if (startupHangup) {
    startupHangup.proc.off('SIGHUP', startupHangup.listener);
    startupHangup = null;
  }
  let stopping: { readonly signal: NodeJS.Signals; readonly at: number } | null = null;
  const onHup = (): void => {
    if (stopping === null) actions.reload();
  };
  const onStop = (signal: NodeJS.Signals): void => {
    if (stopping !== null) {
      if (signal === stopping.signal && now() - stopping.at < DUPLICATE_SIGNAL_MS) return;
      return actions.forceExit(signal);
    }
    stopping = { signal, at: now() };
    actions.shutdown(signal);
  };
  proc.on('SIGHUP', onHup);
  proc.on('SIGTERM', onStop);
  proc.on('SIGINT', onStop);
  return () => {
    proc.off('SIGHUP', onHup);
    proc.off('SIGTERM', onStop);
    proc.off('SIGINT', onStop);
  };
}
