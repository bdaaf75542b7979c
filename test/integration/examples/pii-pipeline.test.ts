/**
 * examples/pii-pipeline end to end: the example's config and policy in real
 * regate processes, the example's own catalog server (catalog.mjs) as a real
 * child process, a real upstream for the pipeline API.
 *
 * Business hours are tested on frozen clocks (REGATE_CLOCK), one regate
 * process per instant: both edges of the window on a Friday and a Monday on
 * each side of both 2026 DST changes in America/Los_Angeles. 09:00 local on
 * Monday 2026-03-09 is 16:00Z, which a fixed PST offset would call 08:00: the
 * allow there (and the deny at 17:00 PDT) proves the window follows DST.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  assertAllowed,
  assertDenied,
  buildExampleBundle,
  epochSeconds,
  exampleDir,
  exampleToken,
  startExample,
  type ExampleRig,
} from '../../helpers/examples.ts';
import { startUpstreamServer, type TestUpstream } from '../../helpers/upstream-server.ts';

const NAME = 'pii-pipeline';
const FILE = 'customers-2026-03.parquet';
const RUN = `/v1/pipelines/pii-redaction/files/${FILE}/runs`;
const RUN_BODY = { parameters: { mode: 'redact' } };

let catalog: { url: string; child: ChildProcessWithoutNullStreams };
let pipelines: TestUpstream;
let bundle: string;

/** Start examples/pii-pipeline/catalog.mjs on a free port; resolves with its URL. */
async function startCatalog(): Promise<{ url: string; child: ChildProcessWithoutNullStreams }> {
  const child = spawn(process.execPath, [join(exampleDir(NAME), 'catalog.mjs'), '0'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('catalog.mjs did not start within 10 s')), 10_000);
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buf += chunk;
      const line = buf.split('\n').find((l) => l.includes('catalog listening'));
      if (line) {
        clearTimeout(timer);
        resolve(String((JSON.parse(line) as { url: string }).url));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`catalog.mjs exited with ${code}`));
    });
  });
  return { url, child };
}

/** A regate process whose clock is frozen at `at` (RFC 3339), forwarding to `upstream`. */
const startAt = (at: string, upstream: TestUpstream = pipelines): Promise<ExampleRig> =>
  startExample(NAME, { upstreams: { pipelines: upstream.url }, bundle, resourceOrigin: catalog.url, env: { REGATE_CLOCK: at } });

/** A token valid at `at` for `sub` in `groups`. */
const tokenAt = (at: string, sub: string, groups: string[]) => exampleToken(NAME, { sub, claims: { groups }, now: epochSeconds(at) });

before(async () => {
  [catalog, pipelines, bundle] = await Promise.all([startCatalog(), startUpstreamServer(), buildExampleBundle(NAME)]);
});

after(async () => {
  catalog?.child.kill();
  await pipelines?.close();
});

describe('pii-pipeline: who, and on which files (Tuesday 10:00 PDT)', () => {
  const AT = '2026-03-10T10:00:00-07:00';
  let rig: ExampleRig;
  let dana: string;

  before(async () => {
    rig = await startAt(AT);
    dana = await tokenAt(AT, 'dana', ['data_engineering']);
  });
  after(async () => {
    await rig?.stop();
  });

  it('a data engineer starts a run on a pii:high file; the policy saw the catalog entry', async () => {
    const { echo, record } = await assertAllowed(rig, () => rig.call('POST', RUN, dana, RUN_BODY), {
      method: 'POST',
      path: RUN,
      reasons: [`dana may run pii-redaction on pii:high file ${FILE} at Tuesday 10:00:00 America/Los_Angeles`],
    });
    assert.deepEqual(JSON.parse(echo.body), RUN_BODY);
    assert.equal(echo.headers['x-user'], 'dana');
    assert.deepEqual((record.input as any).resource, { file: FILE, tags: ['pii:high', 'finance'], owner: 'crm-team', format: 'parquet' });
  });

  it('another pii:high file', async () => {
    const path = '/v1/pipelines/pii-redaction/files/support-tickets-2026-03.jsonl/runs';
    await assertAllowed(rig, () => rig.call('POST', path, dana, RUN_BODY), { method: 'POST', path });
  });

  it('denied outside group data_engineering', async () => {
    const ana = await tokenAt(AT, 'ana', ['analytics']);
    await assertDenied(rig, [pipelines], () => rig.call('POST', RUN, ana, RUN_BODY), ['ana is not in group data_engineering']);
  });

  it('denied on files not tagged pii:high', async () => {
    await assertDenied(rig, [pipelines], () => rig.call('POST', '/v1/pipelines/pii-redaction/files/web-logs-2026-03.jsonl/runs', dana, RUN_BODY), [
      'file web-logs-2026-03.jsonl is not tagged pii:high',
    ]);
    await assertDenied(rig, [pipelines], () => rig.call('POST', '/v1/pipelines/pii-redaction/files/product-catalog.csv/runs', dana, RUN_BODY), [
      'file product-catalog.csv is not tagged pii:high',
    ]);
  });

  it('denied, fail closed, for a file the catalog does not know', async () => {
    const seen = pipelines.requests.length;
    const res = await rig.call('POST', '/v1/pipelines/pii-redaction/files/unknown.parquet/runs', dana, RUN_BODY);
    assert.equal(res.status, 403);
    assert.equal(res.json().reason, 'resource_not_found');
    assert.equal(pipelines.requests.length, seen);
  });
});

describe('pii-pipeline: the catalog is down', () => {
  const AT = '2026-03-10T10:00:00-07:00';
  let rig: ExampleRig;

  before(async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    rig = await startExample(NAME, {
      upstreams: { pipelines: pipelines.url },
      bundle,
      resourceOrigin: `http://127.0.0.1:${port}`,
      env: { REGATE_CLOCK: AT },
    });
  });
  after(async () => {
    await rig?.stop();
  });

  it('denies (fail closed): 503 resource_unavailable, nothing forwarded', async () => {
    const seen = pipelines.requests.length;
    const dana = await tokenAt(AT, 'dana', ['data_engineering']);
    const res = await rig.call('POST', RUN, dana, RUN_BODY);
    assert.equal(res.status, 503);
    assert.equal(res.json().reason, 'resource_unavailable');
    assert.equal(pipelines.requests.length, seen);
  });
});

/** [instant, allowed, expected local weekday, clock, offset] */
const WINDOW: [string, boolean, string, string, string][] = [];
for (const [date, weekday, offset] of [
  ['2026-03-06', 'Friday', '-08:00'], // last weekday of PST before the spring change (Sun 2026-03-08)
  ['2026-03-09', 'Monday', '-07:00'], // first weekday of PDT
  ['2026-10-30', 'Friday', '-07:00'], // last weekday of PDT before the autumn change (Sun 2026-11-01)
  ['2026-11-02', 'Monday', '-08:00'], // first weekday of PST
] as const) {
  for (const [clock, allowed] of [
    ['08:59:59', false],
    ['09:00:00', true],
    ['16:59:59', true],
    ['17:00:00', false],
  ] as const) {
    WINDOW.push([`${date}T${clock}${offset}`, allowed, weekday, clock, offset]);
  }
}
// The weekends in between: never, whatever the hour.
WINDOW.push(['2026-03-08T10:00:00-07:00', false, 'Sunday', '10:00:00', '-07:00']);
WINDOW.push(['2026-10-31T10:00:00-07:00', false, 'Saturday', '10:00:00', '-07:00']);

// One regate process and one upstream per instant, a few at a time: each case is self-contained.
describe('pii-pipeline: business hours, both edges, both sides of each DST change', { concurrency: 2 }, () => {
  for (const [at, allowed, weekday, clock, offset] of WINDOW) {
    it(`${at} (${weekday} ${clock} local): ${allowed ? 'allowed' : 'denied'}`, async () => {
      const upstream = await startUpstreamServer();
      let rig: ExampleRig | undefined;
      try {
        const r = (rig = await startAt(at, upstream));
        const dana = await tokenAt(at, 'dana', ['data_engineering']);
        const record = allowed
          ? (await assertAllowed(r, () => r.call('POST', RUN, dana, RUN_BODY), { method: 'POST', path: RUN })).record
          : await assertDenied(r, [upstream], () => r.call('POST', RUN, dana, RUN_BODY), [
              `runs start only Monday to Friday, 09:00:00 to 17:00:00 America/Los_Angeles (it is ${weekday} ${clock})`,
            ]);
        const time = (record.input as any).time;
        assert.equal(time.timezone, 'America/Los_Angeles');
        assert.equal(time.local.weekday, weekday);
        assert.equal(time.local.clock, clock);
        assert.equal(time.local.offset, offset);
        assert.equal(time.rfc3339, new Date(at).toISOString());
      } finally {
        await rig?.stop();
        await upstream.close();
      }
    });
  }
});
