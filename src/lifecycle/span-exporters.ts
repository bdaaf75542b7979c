/**
 * OTLP span exporters shared by successive runtime versions, one per distinct
 * `tracing` config, reference-counted like {@link DecisionUploads}: spans
 * queued by a draining runtime are exported by the same queue as its
 * successor's, and a reload does not open a second connection pool.
 */

import type { TracingConfig } from '../config/types.ts';
import { createOtlpExporter, type ExportObserver, type SpanExporter } from '../observe/tracing/otlp.ts';

export class SpanExporters {
  readonly #open = new Map<string, { exporter: SpanExporter; refs: number }>();
  readonly #observer: ExportObserver;
  readonly #logger: { warn(obj: object, msg: string): void };

  constructor(observer: ExportObserver, logger: { warn(obj: object, msg: string): void }) {
    this.#observer = observer;
    this.#logger = logger;
  }

  /** The exporter for `config.otlp` (+ service name), started on first use. */
  acquire(config: TracingConfig): { key: string; exporter: SpanExporter } {
    const key = JSON.stringify([config.otlp, config.service_name]);
    let entry = this.#open.get(key);
    if (entry === undefined) {
      entry = { exporter: createOtlpExporter({ ...config.otlp, service_name: config.service_name }, this.#observer, this.#logger), refs: 0 };
      this.#open.set(key, entry);
    }
    entry.refs++;
    return { key, exporter: entry.exporter };
  }

  /** A runtime that acquired `key` was closed; the last one flushes and closes the exporter. */
  async release(key: string): Promise<void> {
    const entry = this.#open.get(key);
    if (entry === undefined) return;
    if (--entry.refs > 0) return;
    this.#open.delete(key);
    await entry.exporter.close();
  }

  async closeAll(): Promise<void> {
    const all = [...this.#open.values()].map((e) => e.exporter);
    this.#open.clear();
    await Promise.all(all.map((e) => e.close()));
  }
}
