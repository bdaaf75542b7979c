/**
 * A real Jaeger v2 (an OpenTelemetry-collector-based binary; built into
 * .tools/bin/jaeger by scripts/install-tools.sh) running all-in-one with the
 * in-memory store: an OTLP/HTTP receiver and the query API, both on 127.0.0.1
 * ports chosen free for this test. The YAML config goes into a temp dir.
 * Spans are read back through the query HTTP API (`/api/traces/<id>`, the
 * same data the UI shows).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './regate-process.ts';
import { freePort } from './ports.ts';
import { waitUntilReady, watchChild } from './tool-process.ts';

export interface JaegerSpan {
  readonly traceID: string;
  readonly spanID: string;
  readonly operationName: string;
  readonly references: readonly { refType: string; traceID: string; spanID: string }[];
  readonly startTime: number;
  readonly duration: number;
  readonly tags: readonly { key: string; type: string; value: unknown }[];
  readonly processID: string;
}

export interface JaegerTrace {
  readonly traceID: string;
  readonly spans: readonly JaegerSpan[];
  readonly processes: Readonly<Record<string, { serviceName: string }>>;
}

export interface Jaeger {
  /** Base URL of the OTLP/HTTP receiver (regate's `tracing.otlp.endpoint`). */
  readonly otlpEndpoint: string;
  readonly queryUrl: string;
  /** The trace with `traceId`, once it has at least `minSpans` spans (bounded wait). */
  trace(traceId: string, minSpans: number, timeoutMs?: number): Promise<JaegerTrace>;
  /** Services Jaeger has seen. */
  services(): Promise<string[]>;
  stop(): Promise<void>;
}

export const jaegerBin = join(repoRoot, '.tools', 'bin', 'jaeger');

export async function startJaeger(): Promise<Jaeger> {
  if (!existsSync(jaegerBin)) throw new Error(`${jaegerBin} is missing: run scripts/install-tools.sh (it builds jaeger with go)`);
  const [otlp, query, grpc] = [await freePort(), await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), 'regate-jaeger-'));
  const config = join(dir, 'jaeger.yaml');
  writeFileSync(
    config,
    `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: []
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:${query}
    grpc:
      endpoint: 127.0.0.1:${grpc}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${otlp}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`,
  );
  const child: ChildProcess = spawn(jaegerBin, ['--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  const { stderr, exited } = watchChild(child);
  const queryUrl = `http://127.0.0.1:${query}`;
  const otlpEndpoint = `http://127.0.0.1:${otlp}`;

  // Ready when both the query API answers and the OTLP receiver accepts an (empty) export.
  await waitUntilReady(child, 'jaeger', stderr, async () => {
    const [q, o] = await Promise.all([
      fetch(`${queryUrl}/api/services`),
      fetch(`${otlpEndpoint}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"resourceSpans":[]}' }),
    ]);
    return q.ok && o.ok;
  });

  return {
    otlpEndpoint,
    queryUrl,
    async trace(traceId, minSpans, timeoutMs = 30_000) {
      const until = Date.now() + timeoutMs;
      let last = '';
      for (;;) {
        const res = await fetch(`${queryUrl}/api/traces/${traceId}`);
        last = await res.text();
        if (res.ok) {
          const body = JSON.parse(last) as { data: JaegerTrace[] | null };
          const t = body.data?.[0];
          if (t !== undefined && t.spans.length >= minSpans) return t;
        }
        if (Date.now() > until) throw new Error(`trace ${traceId} with ${minSpans} spans not in jaeger within ${timeoutMs} ms; last answer: ${last.slice(0, 500)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async services() {
      const body = (await (await fetch(`${queryUrl}/api/services`)).json()) as { data: string[] | null };
      return body.data ?? [];
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A span's tag value by key. */
export function tag(span: JaegerSpan, key: string): unknown {
  return span.tags.find((t) => t.key === key)?.value;
}
