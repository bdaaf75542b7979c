/**
 * Docker is not available in CI, so the Dockerfile is checked by parsing it:
 * the default target (the production image) must not contain examples/ or any
 * key material, whatever stage it would come through (FROM chains and
 * COPY --from are followed); it runs as a numeric user, carries the OCI
 * labels, and its HEALTHCHECK starts no Node process. The demo target does
 * carry the examples, and docker-compose builds that one.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { repoRoot } from '../../helpers/regate-process.ts';

interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly line: number;
}
interface Stage {
  readonly name: string;
  readonly from: string;
  readonly instructions: Instruction[];
}

/** Stages of a Dockerfile: continuation lines joined, comments dropped, global ARGs expanded in FROM. */
function parseDockerfile(text: string): { stages: Stage[]; args: Map<string, string> } {
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      i++;
      const next = lines[i]!;
      if (/^\s*#/.test(next)) continue;
      line = `${line.slice(0, -1)} ${next.trim()}`;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    assert.ok(m, `Dockerfile line ${start + 1}: not an instruction: ${line}`);
    const op = m[1]!.toUpperCase();
    const rest = m[2]!.trim();
    if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      assert.ok(f, `Dockerfile line ${start + 1}: bad FROM`);
      const from = f[1]!.replace(/\$\{(\w+)\}/g, (_, name: string) => args.get(name) ?? '');
      stages.push({ name: f[2] ?? String(stages.length), from, instructions: [] });
    } else if (stages.length === 0) {
      assert.equal(op, 'ARG', `Dockerfile line ${start + 1}: only ARG may precede the first FROM`);
      const [k, v = ''] = rest.split('=');
      args.set(k!, v);
    } else {
      stages.at(-1)!.instructions.push({ op, args: rest, line: start + 1 });
    }
  }
  return { stages, args };
}

/** The stages `target` is built from: its FROM chain and everything it COPYs --from, transitively. */
function closure(stages: Stage[], target: string): Stage[] {
  const byName = new Map(stages.map((s) => [s.name, s]));
  const out = new Map<string, Stage>();
  const visit = (name: string): void => {
    const s = byName.get(name);
    if (s === undefined || out.has(name)) return;
    out.set(name, s);
    visit(s.from);
    for (const ins of s.instructions) {
      const from = /--from=(\S+)/.exec(ins.args);
      if ((ins.op === 'COPY' || ins.op === 'ADD') && from) visit(from[1]!);
    }
  };
  visit(target);
  return [...out.values()];
}

/** COPY/ADD sources (local paths, or paths in another stage). */
function copySources(ins: Instruction): string[] {
  const parts = ins.args.split(/\s+/).filter((p) => !p.startsWith('--'));
  return parts.slice(0, -1);
}

const text = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
const { stages, args } = parseDockerfile(text);
const byName = new Map(stages.map((s) => [s.name, s]));
const finalStage = stages.at(-1)!;

/** Instructions of `stage` including those it inherits through FROM <stage>. */
function effective(stage: Stage): Instruction[] {
  const parent = byName.get(stage.from);
  return [...(parent ? effective(parent) : []), ...stage.instructions];
}

describe('Dockerfile', () => {
  it('the default target is the production image, named runtime', () => {
    assert.equal(finalStage.name, 'runtime');
    assert.ok(byName.has('demo'), 'a separate demo target exists');
  });

  it('nothing the production image is built from copies examples/, keys or key files', () => {
    const forbidden = /(^|\/)(examples|keys)(\/|$)|\.(jwk|jwks|pem|key)$|jwks\.json$/;
    for (const stage of closure(stages, 'runtime')) {
      for (const ins of stage.instructions) {
        if (ins.op !== 'COPY' && ins.op !== 'ADD') continue;
        for (const src of copySources(ins)) assert.doesNotMatch(src, forbidden, `stage ${stage.name}, line ${ins.line}: ${ins.op} ${ins.args}`);
        assert.ok(!/^\.\/?$|^\.\s/.test(ins.args.replace(/--\S+\s+/g, '')), `stage ${stage.name}, line ${ins.line}: COPY of the whole context`);
      }
    }
    // The demo image is where the examples go.
    assert.ok(byName.get('demo')!.instructions.some((i) => i.op === 'COPY' && /examples/.test(i.args)));
  });

  it('runs as a numeric non-root user, with a HEALTHCHECK that starts no Node process', () => {
    const ins = effective(finalStage);
    const users = ins.filter((i) => i.op === 'USER');
    assert.ok(users.length > 0);
    assert.match(users.at(-1)!.args, /^[1-9]\d*:[1-9]\d*$/, 'USER uid:gid by number (runAsNonRoot can verify only a number)');
    const health = ins.filter((i) => i.op === 'HEALTHCHECK').at(-1);
    assert.ok(health, 'HEALTHCHECK present');
    const cmd = /CMD\s+(\[.*\])/.exec(health.args);
    assert.ok(cmd, 'HEALTHCHECK CMD in exec form (no shell needed)');
    const argv = JSON.parse(cmd[1]!) as string[];
    assert.equal(argv[0], '/usr/local/bin/regate-healthprobe');
    assert.ok(!argv.some((a) => /node/.test(a)), 'no node in the health check');
    assert.ok(ins.some((i) => i.op === 'COPY' && /--from=healthprobe\s+\/healthprobe\s+\/usr\/local\/bin\/regate-healthprobe$/.test(i.args)), 'the probe binary is copied in');
    const probeStage = byName.get('healthprobe')!;
    assert.ok(probeStage.instructions.some((i) => i.op === 'RUN' && /CGO_ENABLED=0 go build/.test(i.args)), 'built static');
  });

  it('carries the OCI labels, and the base images are build args (pinnable by digest)', () => {
    const labels = effective(finalStage)
      .filter((i) => i.op === 'LABEL')
      .map((i) => i.args)
      .join(' ');
    for (const key of ['title', 'description', 'version', 'revision', 'created', 'licenses', 'source', 'base.name']) {
      assert.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${key.replace('.', '\\.')}=`), key);
    }
    assert.ok(args.has('NODE_IMAGE') && args.has('GO_IMAGE'));
    assert.match(text, /NODE_IMAGE=node:24-bookworm-slim@sha256:/, 'digest pinning is documented in the Dockerfile');
    assert.equal(byName.get('base')!.from, args.get('NODE_IMAGE'));
  });

  it('docker-compose builds the demo target (the quickstart needs the examples)', () => {
    const compose = parse(readFileSync(join(repoRoot, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { build?: unknown; volumes?: string[] }> };
    assert.deepEqual(compose.services.regate!.build, { context: '.', target: 'demo' });
  });

  it('.dockerignore keeps the toolchain, git and local secrets out of the build context', () => {
    const ignore = readFileSync(join(repoRoot, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const entry of ['.git', '.tools', 'node_modules', '*.pem', '*.key']) assert.ok(ignore.includes(entry), entry);
  });
});
