import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { find, parseExposition, value } from './exposition.js';
import { CLI, call, type Edge, eventually, scratchDir, startEdge, writeConfig } from './harness.js';

// Real processes: an edge taking traffic and the exporter sidecar reading the same data dir.
const scratch = scratchDir();
let edge: Edge;
let exporter: Edge;
let config: string;

async function scrape(url: string) {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  return parseExposition(await res.text());
}

beforeAll(async () => {
  config = writeConfig(
    scratch.dir,
    `
data_dir: ${scratch.dir}/data
snapshot: { interval_ms: 200 }
metrics: { rank_interval_ms: 200 }
limits:
  - { name: requests, capacity: 100, refill: 100, per: day }
`,
  );
  edge = await startEdge({ configPath: config });
  exporter = await startEdge({ configPath: config, command: ['exporter', '--port', '0'] });
});

afterAll(async () => {
  expect(await exporter.stop()).toBe(0);
  expect(await edge.stop()).toBe(0);
  scratch.cleanup();
});

describe('openclaw-edge exporter', () => {
  it('serves the per-agent buckets the edge holds, and follows new traffic', async () => {
    for (let i = 0; i < 7; i++) await call(edge.url, 'POST', '/v1/check', { agent_id: 'busy' });
    await call(edge.url, 'POST', '/v1/check', { agent_id: 'quiet', cost: 2 });
    const bucket = async (agent: string) => {
      const found = find((await scrape(exporter.url)).samples, 'openclaw_agent_token_bucket', {
        agent_id: agent,
        limit: 'requests',
      });
      return found[0]?.value;
    };
    await eventually(async () => Math.abs(((await bucket('busy')) ?? 0) - 93) < 0.5, 10_000);
    expect(await bucket('quiet')).toBeCloseTo(98, 0);

    for (let i = 0; i < 20; i++) await call(edge.url, 'POST', '/v1/check', { agent_id: 'quiet' });
    await eventually(async () => Math.abs(((await bucket('quiet')) ?? 0) - 78) < 0.5, 10_000);
    const { samples, families } = await scrape(exporter.url);
    expect(value(samples, 'openclaw_token_bucket_capacity', { limit: 'requests' })).toBe(200);
    expect(value(samples, 'openclaw_agents_tracked')).toBe(2);
    // It takes no traffic, so it has no traffic families.
    expect(families.has('openclaw_rating_api_requests_total')).toBe(false);
    expect(families.has('openclaw_tokens_used_total')).toBe(false);
  });

  it('takes no traffic', async () => {
    const r = await call(exporter.url, 'POST', '/v1/check', { agent_id: 'busy' });
    expect(r.status).toBe(404);
    expect((await call(exporter.url, 'GET', '/readyz')).status).toBe(200);
  });

  it('never touches the ledger: starts with an unreachable PostgreSQL ledger configured', async () => {
    const pg = writeConfig(
      scratch.dir,
      `data_dir: ${scratch.dir}/data\nledger: { driver: postgres, url: "postgres://127.0.0.1:1/none" }\n`,
      'pg.yaml',
    );
    const second = await startEdge({ configPath: pg, command: ['exporter', '--port', '0'] });
    try {
      expect((await fetch(`${second.url}/metrics`)).status).toBe(200);
    } finally {
      expect(await second.stop()).toBe(0);
    }
  });

  it('refuses to start without snapshots to read, and refuses a bad port', () => {
    const off = writeConfig(
      scratch.dir,
      `data_dir: ${scratch.dir}/off\nsnapshot: { enabled: false }\n`,
      'off.yaml',
    );
    const run = (args: string[]) =>
      spawnSync(process.execPath, [...CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
    const noSnapshots = run(['exporter', '--config', off, '--port', '0']);
    expect(noSnapshots.status).toBe(1);
    expect(noSnapshots.stderr).toContain('snapshot.enabled');
    const badPort = run(['exporter', '--port', 'http']);
    expect(badPort.status).toBe(2);
    expect(badPort.stderr).toContain('--port must be an integer');
  });
});
