/**
 * Hot reload: config and policy change while regate serves.
 *
 * Three triggers, one path. The config file changing (`file`: its directory is
 * watched, debounced, and only a change of content counts), SIGHUP (`signal`)
 * and a bundle source delivering a new bundle (`bundle`) all build a complete
 * new {@link Runtime} — config validated, bundle(s) loaded into wasm, every
 * entrypoint and builtin checked, JWKS keys fetched — and only then swap it in
 * atomically. Requests in flight finish on the runtime they started with; the
 * old runtime is closed exactly when its last request ends. Anything that
 * fails refuses the whole version: it is logged with the precise ConfigError
 * messages, counted (`regate_reloads_total{result="error"}`,
 * `regate_config_reload_success` 0), and the last good version keeps serving.
 *
 * Reloads run one at a time, in order; bundle deliveries that arrive while one
 * runs are coalesced into one rebuild with the latest bundles.
 *
 * What a reload cannot change: the listener addresses (`listen.*`) and
 * `limits.max_header_bytes` are bound to the listening sockets; a reload that
 * changes them is refused with a message saying to restart.
 *
 * Bundles come from {@link BundleSource}s (a watched file, or an OPA bundle
 * server): one for `policy` and one for `policy.candidate`. A source is kept
 * across reloads while its settings are unchanged; SIGHUP re-reads local
 * bundle files (a fresh source), while remote sources keep their own polling
 * schedule.
 */

import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { loadConfig } from '../config/load.ts';
import type { Config, PolicyConfig } from '../config/types.ts';
import { ConfigError, ConfigErrors } from '../errors.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { Bundle } from '../policy/bundle.ts';
import { createRuntime, credentialEvents, type PolicyBundles, type Runtime } from '../runtime.ts';
import type { RegateServer } from '../server.ts';
import { redactUrl } from '../policy/bundle-client.ts';
import { createBundleSource, type BundleSource, type BundleSourceOptions } from '../policy/source.ts';
import { ConfigWatcher } from './config-watch.ts';
import { SourceSlot, withTimeout } from './source-slot.ts';
import { dropReporter, LogStreams } from './log-streams.ts';
import { DecisionUploads } from './decision-uploads.ts';
import { SpanExporters } from './span-exporters.ts';
import { CredentialFiles } from './credential-files.ts';

/** How long a reload waits for a fresh bundle source's first delivery. */
const FIRST_BUNDLE_TIMEOUT_MS = 30_000;

/** Creates a bundle source for a policy config (`createBundleSource` by default; tests inject). */
export type SourceFactory = (policy: PolicyConfig, options: BundleSourceOptions) => BundleSource;

export interface ReloadManagerOptions {
  /** The config file, as given on the command line. */
  readonly configFile: string;
  /** The startup config, already loaded and validated from `configFile`. */
  readonly config: Config;
  readonly server: RegateServer;
  readonly logger: Logger;
  /** Process-wide metrics, shared by every runtime version. */
  readonly metrics: Metrics;
  readonly createSource?: SourceFactory;
}

/** What one reload attempt did. */
export type ReloadOutcome = { readonly ok: true; readonly revision: string | null } | { readonly ok: false; readonly errors: readonly string[] };

interface Slots {
  readonly active: SourceSlot;
  readonly candidate: SourceSlot | null;
}

/** Owns the running version: bundle sources, config watcher, runtime builds and swaps. */
export class ReloadManager {
  readonly #configFile: string;
  readonly #server: RegateServer;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #createSource: SourceFactory;
  readonly #streams: LogStreams;
  /** Decision-log destination each live runtime acquired. */
  readonly #streamOf = new Map<Runtime, string>();
  readonly #uploads: DecisionUploads;
  readonly #uploadOf = new Map<Runtime, string>();
  readonly #exporters: SpanExporters;
  readonly #exporterOf = new Map<Runtime, string>();
  /** Credential files, shared by every version (an unchanged file keeps its watcher and value). */
  readonly #credentials: CredentialFiles;
  readonly #retiring = new Set<Promise<void>>();

  readonly #watcher: ConfigWatcher;
  #config: Config;
  #slots: Slots | null = null;
  /** The bundles the running runtime was built from. */
  #built: { active: Bundle; candidate: Bundle | null } | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #rebuildQueued = false;
  #stopping = false;
  /** Set when the startup build failed (local bundles): startup rejects with it. */
  #startupError: ConfigErrors | undefined;

  constructor(options: ReloadManagerOptions) {
    this.#configFile = options.configFile;
    this.#config = options.config;
    this.#server = options.server;
    this.#logger = options.logger;
    this.#metrics = options.metrics;
    this.#createSource = options.createSource ?? createBundleSource;
    const dropped = dropReporter(this.#logger);
    this.#streams = new LogStreams(
      () => this.#metrics.decisionLogError(),
      (destination) => {
        this.#metrics.decisionLogDropped();
        dropped(destination);
      },
    );
    this.#uploads = new DecisionUploads({ observer: this.#metrics.decisionLogUpload, logger: this.#logger });
    this.#exporters = new SpanExporters(this.#metrics.spanExport, this.#logger);
    this.#credentials = new CredentialFiles(credentialEvents(this.#metrics, this.#logger));
    this.#metrics.decisionLogBuffered(() => this.#streams.buffered);
    this.#watcher = new ConfigWatcher(this.#configFile, () => void this.reload('file'), this.#logger);
  }

  /** The config of the running version (or the startup config until one runs). */
  get config(): Config {
    return this.#config;
  }

  /**
   * Start the bundle sources and the config watcher. With local bundle files,
   * waits for them and activates the first version: a broken one rejects with
   * ConfigErrors, as startup always did. With a bundle server, returns at once:
   * the first version becomes active when its bundle arrives (until then the
   * proxy answers 503 and /readyz is false).
   */
  async start(): Promise<void> {
    await this.#watcher.markRead();
    const slots = this.#slotsFor(this.#config, false);
    this.#slots = { active: slots.active.slot, candidate: slots.candidate?.slot ?? null };
    this.#metrics.bundleSource(this.#slots.active.local ? 'file' : 'service');
    const waiting = [this.#slots.active, this.#slots.candidate].filter((s): s is SourceSlot => s !== null);
    if (waiting.some((s) => !s.local)) {
      for (const s of waiting) s.live = true;
      this.#logger.info('waiting for the policy bundle: the proxy answers 503 until it is active');
    } else {
      try {
        await Promise.all(waiting.map((s) => withTimeout(s.first, FIRST_BUNDLE_TIMEOUT_MS, 'the bundle source delivered nothing')));
      } catch (err) {
        throw asConfigErrors(err, this.#config.source);
      }
      await this.#enqueue(() => this.#rebuild(null));
      if (this.#server.runtime === null) throw this.#startupError ?? new ConfigErrors([new ConfigError(this.#config.source, '', 'no policy version could be activated')]);
      for (const s of waiting) s.live = true;
      // A delivery between the first bundle and going live: build it now.
      this.#scheduleRebuild();
    }
    this.#watcher.apply(this.#config.reload);
  }

  /** Reload config (and, for `signal`, local bundle files) now. Queued behind any running reload. */
  reload(trigger: 'file' | 'signal'): Promise<ReloadOutcome> {
    return this.#enqueue(() => this.#reloadConfig(trigger));
  }

  /** Stop reloading: the watcher and the bundle sources stop; a reload still running is not swapped in. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#watcher.stop();
    const slots = this.#slots;
    this.#slots = null;
    await Promise.allSettled([slots?.active, slots?.candidate].filter((s) => s != null).map((s) => s.source.stop()));
  }

  /**
   * Close every runtime — the active one and those still retiring — and flush
   * the decision logs. Call after the server drained (nothing runs any more).
   */
  async close(): Promise<void> {
    const rt = this.#server.runtime;
    if (rt !== null) await this.#closeRuntime(rt);
    await Promise.allSettled([...this.#retiring]);
    await this.#streams.closeAll();
    await this.#uploads.closeAll();
    await this.#exporters.closeAll();
    this.#credentials.closeAll();
  }

  // ------------------------------------------------------------ queue

  #enqueue<T>(job: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(job, job);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Coalesce bundle deliveries: one queued rebuild reads whatever bundles are latest when it runs. */
  #scheduleRebuild(): void {
    if (this.#rebuildQueued || this.#stopping) return;
    this.#rebuildQueued = true;
    void this.#enqueue(async () => {
      this.#rebuildQueued = false;
      return this.#rebuild('bundle');
    });
  }

  #onBundle = (_slot: SourceSlot): void => this.#scheduleRebuild();

  #onSourceError = (slot: SourceSlot, err: Error): void => {
    this.#metrics.reloaded('bundle', 'error');
    this.#logger.error({ trigger: 'bundle', bundle: slot.label, errors: messagesOf(err) }, 'policy bundle refused; the last good version keeps serving');
  };

  // ------------------------------------------------------------ reloads

  /**
   * Build a runtime from the running config and the latest bundles, if they
   * changed. `trigger` null: the first activation at startup (local bundles).
   */
  async #rebuild(trigger: 'bundle' | null): Promise<ReloadOutcome> {
    const slots = this.#slots;
    if (slots === null || this.#stopping) return { ok: true, revision: null };
    const active = slots.active.latest;
    const candidate = slots.candidate?.latest ?? null;
    // Not every bundle has arrived yet (a remote source, or a candidate still loading).
    if (active === null || (slots.candidate !== null && candidate === null)) return { ok: true, revision: null };
    if (this.#built !== null && this.#built.active === active && this.#built.candidate === candidate) return { ok: true, revision: null };
    const first = this.#server.runtime === null;
    const t0 = performance.now();
    try {
      const rt = await this.#build(this.#config, { active, candidate: candidate ?? undefined });
      if (!this.#activate(rt, this.#config, { active, candidate })) return { ok: true, revision: null };
      if (first) {
        this.#metrics.activated();
        this.#logger.info({ revision: active.manifest.revision, candidate_revision: candidate?.manifest.revision }, 'policy active');
      } else {
        this.#metrics.reloaded('bundle', 'success');
        this.#logger.info({ trigger: 'bundle', revision: active.manifest.revision, candidate_revision: candidate?.manifest.revision, duration_ms: elapsed(t0) }, 'reloaded');
      }
      return { ok: true, revision: active.manifest.revision };
    } catch (err) {
      const errors = messagesOf(err);
      if (trigger === null) {
        this.#startupError = asConfigErrors(err, this.#config.source);
      } else {
        this.#metrics.reloaded('bundle', 'error');
        this.#logger.error({ trigger: 'bundle', errors, duration_ms: elapsed(t0), ...bugOf(err) }, 'policy bundle refused; the last good version keeps serving');
      }
      return { ok: false, errors };
    }
  }

  async #reloadConfig(trigger: 'file' | 'signal'): Promise<ReloadOutcome> {
    if (this.#stopping) return { ok: false, errors: ['shutting down'] };
    const started: SourceSlot[] = [];
    const t0 = performance.now();
    try {
      await this.#watcher.markRead();
      const config = await loadConfig(this.#configFile);
      const fixed = restartRequired(this.#config, config);
      if (fixed.length > 0) throw new ConfigErrors(fixed);

      // Sources: keep those whose settings are unchanged (SIGHUP re-reads local files).
      const wanted = this.#slotsFor(config, trigger === 'signal');
      for (const s of [wanted.active, wanted.candidate]) if (s?.fresh) started.push(s.slot);
      const slots: Slots = { active: wanted.active.slot, candidate: wanted.candidate?.slot ?? null };
      await Promise.all(
        started.map(async (s) => {
          try {
            await withTimeout(s.first, FIRST_BUNDLE_TIMEOUT_MS, 'the bundle source delivered nothing');
          } catch (err) {
            // Remote and not there yet: fine before the first activation, a failure after.
            if (this.#server.runtime !== null || s.local) throw err;
          }
        }),
      );

      const active = slots.active.latest;
      const candidate = slots.candidate?.latest ?? null;
      if (active === null || (slots.candidate !== null && candidate === null)) {
        // Nothing runs yet and the bundle has not arrived: take the config, build when it does.
        this.#commitSlots(slots);
        this.#config = config;
        this.#metrics.reloaded(trigger, 'success');
        this.#logger.info({ trigger }, 'config reloaded; waiting for the policy bundle');
        return { ok: true, revision: null };
      }
      const rt = await this.#build(config, { active, candidate: candidate ?? undefined });
      if (!this.#activate(rt, config, { active, candidate })) return { ok: false, errors: ['shutting down'] };
      this.#commitSlots(slots);
      this.#watcher.apply(config.reload);
      this.#metrics.reloaded(trigger, 'success');
      this.#logger.info({ trigger, revision: active.manifest.revision, candidate_revision: candidate?.manifest.revision, routes: config.routes.length, duration_ms: elapsed(t0) }, 'reloaded');
      // A fresh source may have delivered again while it was not live yet.
      this.#scheduleRebuild();
      return { ok: true, revision: active.manifest.revision };
    } catch (err) {
      await Promise.allSettled(started.map((s) => s.source.stop()));
      const errors = messagesOf(err);
      this.#metrics.reloaded(trigger, 'error');
      this.#logger.error({ trigger, errors, duration_ms: elapsed(t0), ...bugOf(err) }, 'reload refused; the last good version keeps serving');
      return { ok: false, errors };
    }
  }

  /** The sources `config` needs: the current ones when their settings are unchanged, else fresh ones. */
  #slotsFor(config: Config, refreshLocal: boolean): { active: { slot: SourceSlot; fresh: boolean }; candidate: { slot: SourceSlot; fresh: boolean } | null } {
    const policy = config.policy;
    const pick = (sourcePolicy: PolicyConfig, current: SourceSlot | null | undefined, role: 'active' | 'candidate'): { slot: SourceSlot; fresh: boolean } => {
      // The settings' hash, never the settings: policy.service.headers carries credentials.
      const key = createHash('sha256')
        .update(JSON.stringify({ bundle: sourcePolicy.bundle, service: sourcePolicy.service, signing: sourcePolicy.signing }))
        .digest('hex');
      const local = sourcePolicy.service === undefined;
      if (current && current.key === key && !(refreshLocal && local)) return { slot: current, fresh: false };
      // Only the enforced bundle's source sets the freshness gauges: a candidate file checked every few seconds must not mask a stale server.
      const source = this.#createSource(sourcePolicy, { logger: this.#logger, metrics: this.#metrics, configFile: config.source, freshness: role === 'active' });
      // What the log may name: the file, or the server URL without credentials or query.
      const label = sourcePolicy.service !== undefined ? redactUrl(sourcePolicy.service.url) : (sourcePolicy.bundle ?? '');
      return { slot: new SourceSlot(key, label, local, source, this.#onBundle, this.#onSourceError), fresh: true };
    };
    const active = pick(policy, this.#slots?.active, 'active');
    const c = policy.candidate;
    // The candidate is a local file, verified with the same signing settings as the enforced bundle.
    const candidate = c === undefined ? null : pick({ ...policy, bundle: c.bundle, service: undefined }, this.#slots?.candidate, 'candidate');
    return { active, candidate };
  }

  /** The new slots serve from now on; sources no longer needed stop. */
  #commitSlots(slots: Slots): void {
    const old = this.#slots;
    this.#slots = slots;
    this.#metrics.bundleSource(slots.active.local ? 'file' : 'service');
    for (const s of [slots.active, slots.candidate]) if (s) s.live = true;
    for (const s of [old?.active, old?.candidate]) {
      if (s && s !== slots.active && s !== slots.candidate) void s.source.stop();
    }
  }

  /** A complete runtime for `config` + `bundles`, keys fetched; throws ConfigError(s) for any problem. */
  async #build(config: Config, bundles: PolicyBundles): Promise<Runtime> {
    const destination = config.decision_log.enabled ? config.decision_log.destination : undefined;
    const stream =
      destination === undefined
        ? undefined
        : this.#streams.acquire(destination, { maxBytes: config.decision_log.max_buffer_bytes, policy: config.decision_log.overload });
    const service = config.decision_log.enabled ? config.decision_log.service : undefined;
    const upload = service === undefined ? undefined : this.#uploads.acquire(service);
    const spans = config.tracing === undefined ? undefined : this.#exporters.acquire(config.tracing);
    let rt: Runtime;
    try {
      rt = await createRuntime(config, bundles, {
        logger: this.#logger,
        metrics: this.#metrics,
        ...(stream ? { decisionLogStream: stream } : {}),
        ...(upload ? { decisionLogUpload: upload.push } : {}),
        ...(spans ? { spanExporter: spans.exporter } : {}),
        credentialFiles: this.#credentials,
      });
    } catch (err) {
      if (destination !== undefined) await this.#streams.release(destination);
      if (upload !== undefined) await this.#uploads.release(upload.key);
      if (spans !== undefined) await this.#exporters.release(spans.key);
      throw err;
    }
    if (destination !== undefined) this.#streamOf.set(rt, destination);
    if (upload !== undefined) this.#uploadOf.set(rt, upload.key);
    if (spans !== undefined) this.#exporterOf.set(rt, spans.key);
    try {
      await this.#checkKeys(rt, config);
    } catch (err) {
      await this.#closeRuntime(rt);
      throw err;
    }
    return rt;
  }

  /**
   * Fetch remote keys before the version takes traffic. A version that would lose
   * keys the running one has is refused; at startup, missing keys leave /readyz
   * false instead (a JWKS outage must not keep regate down once it is over).
   */
  async #checkKeys(rt: Runtime, config: Config): Promise<void> {
    const fetched = await rt.authenticator.prefetch();
    const running = this.#server.runtime;
    if (running === null || !running.authenticator.ready() || rt.authenticator.ready()) return;
    const missing = fetched.filter((f) => !f.ready).map((f) => f.issuerId);
    throw new ConfigErrors(
      missing.map((id) => {
        const i = config.issuers.findIndex((x) => x.id === id);
        return new ConfigError(config.source, `/issuers/${i}`, `keys for issuer "${id}" could not be loaded; the running version has them and keeps serving`);
      }),
    );
  }

  /** Swap `rt` in; the previous runtime is closed once its requests drained. False when shutting down. */
  #activate(rt: Runtime, config: Config, bundles: { active: Bundle; candidate: Bundle | null }): boolean {
    if (this.#stopping) {
      void this.#closeRuntime(rt);
      return false;
    }
    const old = this.#server.swap(rt);
    this.#config = config;
    this.#built = bundles;
    const log = config.decision_log;
    if (log.enabled) this.#streams.configure(log.destination, { maxBytes: log.max_buffer_bytes, policy: log.overload });
    this.#metrics.setBundle({ name: 'regate', revision: rt.policy.revision });
    if (old !== null) {
      const retired = this.#server.drained(old).then(() => this.#closeRuntime(old));
      this.#retiring.add(retired);
      void retired.finally(() => this.#retiring.delete(retired));
    }
    return true;
  }

  async #closeRuntime(rt: Runtime): Promise<void> {
    try {
      await rt.close();
    } catch (err) {
      this.#logger.warn({ err }, 'closing a retired runtime failed');
    }
    const destination = this.#streamOf.get(rt);
    this.#streamOf.delete(rt);
    if (destination !== undefined) await this.#streams.release(destination);
    const upload = this.#uploadOf.get(rt);
    this.#uploadOf.delete(rt);
    if (upload !== undefined) await this.#uploads.release(upload);
    const exporter = this.#exporterOf.get(rt);
    this.#exporterOf.delete(rt);
    if (exporter !== undefined) await this.#exporters.release(exporter);
  }
}

// ------------------------------------------------------------ helpers

/** Keys bound to the listening sockets: a reload cannot apply them. */
export function restartRequired(running: Config, next: Config): ConfigError[] {
  const problems: ConfigError[] = [];
  for (const listener of ['proxy', 'admin'] as const) {
    for (const key of ['host', 'port'] as const) {
      const was = running.listen[listener][key];
      const now = next.listen[listener][key];
      if (was !== now) {
        problems.push(new ConfigError(next.source, `/listen/${listener}/${key}`, `changed from ${was} to ${now}, but listener addresses cannot change on reload: restart regate to apply it`));
      }
    }
  }
  if (running.limits.max_header_bytes !== next.limits.max_header_bytes) {
    problems.push(
      new ConfigError(
        next.source,
        '/limits/max_header_bytes',
        `changed from ${running.limits.max_header_bytes} to ${next.limits.max_header_bytes}, but the header size limit is fixed when the listener starts: restart regate to apply it`,
      ),
    );
  }
  return problems;
}

/** Milliseconds since `t0`, rounded to 0.1 ms (operational log). */
function elapsed(t0: number): number {
  return Math.round((performance.now() - t0) * 10) / 10;
}

/** Every message a refusal carries: each ConfigError of a ConfigErrors, else the error's message. */
export function messagesOf(err: unknown): string[] {
  if (err instanceof ConfigErrors) return err.errors.map((e) => e.message);
  if (err instanceof Error) return [err.message];
  return [String(err)];
}

/** A refusal that is not a ConfigError is a bug or an I/O failure: keep its stack in the log. */
function bugOf(err: unknown): { err?: unknown } {
  return err instanceof ConfigErrors || err instanceof ConfigError ? {} : { err };
}

function asConfigErrors(err: unknown, file: string): ConfigErrors {
  if (err instanceof ConfigErrors) return err;
  if (err instanceof ConfigError) return new ConfigErrors([err]);
  return new ConfigErrors([new ConfigError(file, '/policy', `the policy bundle could not be loaded: ${err instanceof Error ? err.message : String(err)}`, { cause: err })]);
}
