/**
 * Scrape cost of GET /metrics as the number of agents grows: our exporter (top-N agent series
 * plus exact aggregates, computed from one engine pass) against the naive prom-client exporter
 * one would write without a cardinality guard (a labelled gauge set for every agent at scrape
 * time). Both render the same limiter in the same run.
 *
 *   npm run bench -- metrics [agents...]      (default 10000 100000)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { definePolicy } from '@openclaw-edge/core';
import { Limiter } from '@openclaw-edge/engine';
import { Gauge, Registry } from 'prom-client';
import { EdgeMetrics } from '../packages/server/src/metrics/edge-metrics.js';
import {
  fmtInt,
  gitState,
  loadAverage,
  median,
  mulberry32,
  progress,
  round,
  table,
} from './support.js';

const SCRAPES = 9;
/** Untimed scrapes first, so the JIT has compiled the render path for every contender. */
const WARMUP = 3;
const TOP = 500;

interface Row {
  agents: number;
  ours_ms: number;
  ours_bytes: number;
  ours_series: number;
  report_ms: number;
  naive_ms: number;
  naive_bytes: number;
  naive_series: number;
}

function populate(agents: number): Limiter {
  const limiter = new Limiter({
    nodeId: 'bench',
    incarnation: 1,
    initialAgents: agents,
    defaultPolicy: definePolicy([
      { name: 'requests', capacity: 600, refill: 600, per: 'minute' },
      { name: 'tokens', resource: 'tokens', capacity: 1e6, refill: 1e6, per: 'hour' },
    ]),
  });
  const random = mulberry32(7);
  const now = Date.now();
  // Zipf-like activity: agent i gets about 1/(i+1) of the traffic, every agent at least once.
  for (let i = 0; i < agents; i++) {
    const n = 1 + Math.floor(2000 / (i + 1));
    for (let j = 0; j < n; j++)
      limiter.check(`agent-${i}`, { requests: 1, tokens: Math.floor(random() * 2000) }, now);
  }
  return limiter;
}

async function timeIt(work: () => Promise<string> | string): Promise<{ ms: number; body: string }> {
  const times: number[] = [];
  let body = '';
  for (let i = 0; i < WARMUP; i++) await work();
  for (let i = 0; i < SCRAPES; i++) {
    const t0 = process.hrtime.bigint();
    body = await work();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { ms: median(times), body };
}

const seriesIn = (body: string) => body.split('\n').filter((l) => l.startsWith('openclaw_')).length;

/** Populates a limiter with `agents` agents and times both exporters scraping it. */
async function measure(agents: number): Promise<Row> {
  progress(`populating ${fmtInt(agents)} agents`);
  const limiter = populate(agents);
  const metrics = new EdgeMetrics({
    limiter,
    nodeId: 'bench',
    version: 'bench',
    topAgents: TOP,
    rankBy: 'activity',
    now: () => Date.now(),
  });
  metrics.rank();
  progress('scraping ours');
  const ours = await timeIt(async () => (await metrics.render('text/plain')).body);
  const report = await timeIt(() => {
    limiter.bucketReport(Date.now());
    return '';
  });

  progress('scraping the naive exporter');
  const registry = new Registry();
  new Gauge({
    name: 'openclaw_agent_token_bucket',
    help: 'Tokens available, one series per agent and limit',
    labelNames: ['agent_id', 'limit'],
    registers: [registry],
    collect() {
      this.reset();
      const now = Date.now();
      for (const agentId of limiter.agents()) {
        for (const s of limiter.peek(agentId, now).limits) {
          this.set({ agent_id: agentId, limit: s.limit.name }, s.remaining);
        }
      }
    },
  });
  const naive = await timeIt(() => registry.metrics());
  return {
    agents,
    ours_ms: round(ours.ms, 2),
    ours_bytes: ours.body.length,
    ours_series: seriesIn(ours.body),
    report_ms: round(report.ms, 2),
    naive_ms: round(naive.ms, 2),
    naive_bytes: naive.body.length,
    naive_series: seriesIn(naive.body),
  };
}

export async function main(args: readonly string[]): Promise<void> {
  const sizes = args.length > 0 ? args.map(Number) : [10_000, 100_000];
  for (const [i, n] of sizes.entries()) {
    if (!Number.isSafeInteger(n) || n < 1) {
      throw new Error(`metrics bench: agent counts must be positive integers, not "${args[i]}"`);
    }
  }
  const rows: Row[] = [];
  // A throwaway round first: whichever size ran first paid for compiling the render path.
  progress('warm-up round (10,000 agents, not recorded)');
  await measure(10_000);
  for (const agents of sizes) rows.push(await measure(agents));
  console.log(
    `\n${table([
      [
        'agents',
        'ours ms',
        'engine pass ms',
        'ours series',
        'ours KiB',
        'naive ms',
        'naive series',
        'naive KiB',
        'naive/ours time',
      ],
      ...rows.map((r) => [
        fmtInt(r.agents),
        r.ours_ms.toFixed(2),
        r.report_ms.toFixed(2),
        fmtInt(r.ours_series),
        fmtInt(r.ours_bytes / 1024),
        r.naive_ms.toFixed(2),
        fmtInt(r.naive_series),
        fmtInt(r.naive_bytes / 1024),
        `${(r.naive_ms / r.ours_ms).toFixed(1)}×`,
      ]),
    ])}\n`,
  );
  const dir = new URL('./results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  const result = {
    benchmark: 'metrics',
    date: new Date().toISOString(),
    ...gitState(),
    load_average: loadAverage(),
    top_agents: TOP,
    scrapes_per_size: SCRAPES,
    warmup_scrapes: WARMUP,
    rows,
  };
  writeFileSync(new URL('metrics.json', dir), `${JSON.stringify(result, null, 2)}\n`);
  progress('wrote bench/results/metrics.json');
}
