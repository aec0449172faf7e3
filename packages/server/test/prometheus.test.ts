import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseExposition } from './exposition.js';
import { call, type Edge, eventually, scratchDir, startEdge, writeConfig } from './harness.js';

// A real Prometheus server (Debian package `prometheus`) scraping a real edge process under a
// generated load, with the recording rules of deploy/ loaded. Nothing here is mocked.
const root = join(import.meta.dirname, '..', '..', '..');
const hasPrometheus = spawnSync('prometheus', ['--version']).status === 0;
if (!hasPrometheus) {
  if (process.env.CI === 'true')
    throw new Error('prometheus is not installed; .ci/run installs it');
  console.log(
    'skipping the Prometheus integration test: no `prometheus` binary (apt-get install prometheus)',
  );
}

const scratch = scratchDir();
let edge: Edge;
let prometheus: ChildProcess;
let promUrl: string;
let promLog = '';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

interface Series {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(expr: string, time?: number): Promise<Series[]> {
  const params = new URLSearchParams({ query: expr });
  if (time !== undefined) params.set('time', String(time));
  const res = await fetch(`${promUrl}/api/v1/query?${params}`);
  const body = (await res.json()) as { status: string; error?: string; data: { result: Series[] } };
  if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
  return body.data.result;
}

async function scalar(expr: string): Promise<number> {
  const result = await query(expr);
  if (result.length !== 1) throw new Error(`${expr}: ${result.length} series`);
  return Number((result[0] as Series).value[1]);
}

const check = (agent: string, tokens: number) =>
  call(edge.url, 'POST', '/v1/check', { agent_id: agent, cost: { requests: 1, tokens } });
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  if (!hasPrometheus) return;
  const config = writeConfig(
    scratch.dir,
    `
data_dir: ${scratch.dir}/data
metrics: { top_agents: 3, rank_interval_ms: 300 }
limits:
  - { name: requests, capacity: 50, refill: 50, per: day }
  - { name: tokens, resource: tokens, capacity: 100000, refill: 1000, per: day }
`,
  );
  edge = await startEdge({ configPath: config });
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  const target = new URL(edge.url).host;
  const promConfig = join(scratch.dir, 'prometheus.yml');
  writeFileSync(
    promConfig,
    `global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: [${JSON.stringify(join(root, 'deploy', 'prometheus', 'rules.yml'))}]
scrape_configs:
  - job_name: openclaw-edge
    static_configs: [{ targets: [${JSON.stringify(target)}] }]
`,
  );
  prometheus = spawn(
    'prometheus',
    [
      `--config.file=${promConfig}`,
      `--storage.tsdb.path=${join(scratch.dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  prometheus.stderr?.setEncoding('utf8').on('data', (c: string) => {
    promLog = (promLog + c).slice(-4000);
  });
  await eventually(async () => {
    try {
      return (await fetch(`${promUrl}/-/ready`)).ok;
    } catch {
      return false;
    }
  }, 30_000).catch((e) => {
    throw new Error(`${(e as Error).message}; prometheus said: ${promLog}`);
  });
}, 60_000);

afterAll(async () => {
  if (prometheus && prometheus.exitCode === null) {
    const exited = new Promise((r) => prometheus.once('exit', r));
    prometheus.kill('SIGTERM');
    await exited;
  }
  if (edge) expect(await edge.stop()).toBe(0);
  scratch.cleanup();
});

describe.skipIf(!hasPrometheus)('a real Prometheus scraping the edge', () => {
  it('sees the per-agent series, the aggregates and the recording rules the load implies', async () => {
    // Let Prometheus see the counters at zero first: rates then need no extrapolation at the start.
    await eventually(
      async () =>
        (await query('openclaw_rating_api_requests_total{decision="denied"} == 0')).length === 1,
      20_000,
    );

    // Twenty quiet agents, then three busy ones until the edge ranks them as its top 3.
    for (let i = 0; i < 20; i++) for (let j = 0; j < 2; j++) await check(`tail-${i}`, 7);
    const warmup = { 'top-1': [5, 100], 'top-2': [4, 50], 'top-3': [3, 10] } as const;
    for (const [agent, [n, tokens]] of Object.entries(warmup))
      for (let j = 0; j < n; j++) await check(agent, tokens);
    await eventually(async () => {
      const { samples } = parseExposition(await (await fetch(`${edge.url}/metrics`)).text());
      const ids = new Set(
        samples
          .filter((s) => s.name === 'openclaw_agent_token_bucket')
          .map((s) => s.labels.agent_id),
      );
      return ['top-1', 'top-2', 'top-3'].every((a) => ids.has(a));
    });
    // The rest of the load, interleaved over about three seconds: 60, 40 and 30 checks in all.
    const rest: [string, number, number][] = [
      ['top-1', 55, 100],
      ['top-2', 36, 50],
      ['top-3', 27, 10],
    ];
    let denied = 0;
    for (let round = 0; round < 55; round++) {
      for (const [agent, n, tokens] of rest) {
        if (round < n && (await check(agent, tokens)).status === 429) denied++;
      }
      if (round % 5 === 0) await pause(250);
    }
    expect(denied).toBe(10); // top-1 has 50 requests a day
    await eventually(
      async () => (await query('sum(openclaw_rating_api_requests_total) == 170')).length === 1,
      20_000,
    );

    // Counters: exact.
    const used = (agent: string) =>
      scalar(`openclaw_tokens_used_total{agent_id="${agent}", resource="tokens"}`);
    expect(await used('top-1')).toBe(5000);
    expect(await used('top-2')).toBe(2000);
    expect(await used('top-3')).toBe(300);
    // Everything charged while outside the top 3: the tails and the warm-up.
    expect(await used('__other__')).toBe(20 * 14 + 5 * 100 + 4 * 50 + 3 * 10);
    expect(await scalar('openclaw_rating_api_requests_total{decision="denied"}')).toBe(10);

    // Per-agent series are bounded: three agents and __other__.
    expect(
      (await query('openclaw_agent_token_bucket{limit="tokens"}'))
        .map((s) => s.metric.agent_id)
        .sort(),
    ).toEqual(['__other__', 'top-1', 'top-2', 'top-3']);
    // Gauges: refill is 50 requests a day (under 0.05 in this test's lifetime), so nearly exact.
    expect(
      await scalar('openclaw_agent_token_bucket{agent_id="top-1", limit="requests"}'),
    ).toBeLessThan(0.05);
    expect(
      await scalar('openclaw_agent_token_bucket{agent_id="top-2", limit="tokens"}'),
    ).toBeCloseTo(98000, -1);
    expect(
      await scalar('openclaw_agent_bucket_capacity{agent_id="__other__", limit="tokens"}'),
    ).toBe(2_000_000);
    expect(await scalar('openclaw_token_bucket_capacity{limit="requests"}')).toBe(23 * 50);
    const usedRequests = 50 + 40 + 30 + 20 * 2;
    const expectedUtilisation = usedRequests / (23 * 50);
    expect(await scalar('openclaw_token_bucket_utilisation{limit="requests"}')).toBeCloseTo(
      expectedUtilisation,
      3,
    );

    // Recording rules, once evaluated after the last scrape.
    await eventually(async () => {
      const r = await query('job:openclaw_rating_api_denials:ratio_rate5m');
      return r.length === 1 && Math.abs(Number((r[0] as Series).value[1]) - 10 / 170) < 1e-9;
    }, 20_000);
    expect(await scalar('job:openclaw_token_bucket_utilisation:max{limit="requests"}')).toBeCloseTo(
      expectedUtilisation,
      3,
    );
    expect(await scalar('job:openclaw_token_bucket_utilisation:avg{limit="requests"}')).toBeCloseTo(
      expectedUtilisation,
      3,
    );
    const [fleet] = await query('job:openclaw_rating_api_requests:rate5m');
    expect(fleet).toBeDefined();
    // An instant query reports its own time; timestamp() gives the rule evaluation's.
    const at = await scalar('timestamp(job:openclaw_rating_api_requests:rate5m)');
    // The rule computes what its expression computes at the same instant, and it is not zero.
    const direct = await query(
      'sum by (job) (rate(openclaw_rating_api_requests_total{job="openclaw-edge"}[5m]))',
      at,
    );
    expect(Number((fleet as Series).value[1])).toBeCloseTo(
      Number((direct[0] as Series).value[1]),
      9,
    );
    expect(Number((fleet as Series).value[1])).toBeGreaterThan(0);

    // The query the KEDA ScaledObject scales the edge on returns exactly one series.
    const keda = parse(
      readFileSync(join(root, 'deploy', 'kubernetes', 'keda-scaledobject.yaml'), 'utf8'),
    ) as {
      spec: { triggers: { metadata: { query: string } }[] };
    };
    const scaling = await query(keda.spec.triggers[0]?.metadata.query as string);
    expect(scaling).toHaveLength(1);
    expect(Number((scaling[0] as Series).value[1])).toBeGreaterThan(0);
  }, 90_000);
});
