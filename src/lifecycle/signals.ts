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
 */

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
export function handleSignals(actions: SignalActions, proc: NodeJS.Process = process): () => void {
  if (startupHangup) {
    startupHangup.proc.off('SIGHUP', startupHangup.listener);
    startupHangup = null;
  }
  let stopping = false;
  const onHup = (): void => {
    if (!stopping) actions.reload();
  };
  const onStop = (signal: NodeJS.Signals): void => {
    if (stopping) return actions.forceExit(signal);
    stopping = true;
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
