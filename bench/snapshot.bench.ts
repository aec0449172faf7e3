/**
 * What a periodic snapshot costs the event loop per slice of 1,000 changed agents: drain the
 * changed buckets from the limiter, encode them and hand them to the writer thread. Ours
 * (`SqliteSnapshotStore.save`: every state of the slice packed into one buffer, moved to the
 * thread) against the way it was done before, kept here as the baseline: one `encodeBucket`
 * buffer per state, copied to the thread by structured clone.
 *
 *   npm run bench -- snapshot [rounds]      (default 12)
 *
 * Each round charges every one of 10,000 agents (a policy of two limits, so 20,000 buckets) and
 * then snapshots them in slices; rounds alternate between ours and the baseline. The baseline
 * posts to a MessageChannel whose other end nobody reads: the copy is made when posting, which
 * is the event loop's share. Times are per slice, drain included; the first two rounds of each
 * are warm-up and not counted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { definePolicy, encodeBucket } from '@openclaw-edge/core';
import { Limiter } from '@openclaw-edge/engine';
import {
  drainChangedBuckets,
  type SnapshotEntry,
} from '../packages/server/src/snapshot/snapshot-store.js';
import { SqliteSnapshotStore } from '../packages/server/src/snapshot/sqlite-store.js';
import { gitState, loadAverage, percentile, progress, round, table } from './support.js';

const AGENTS = 10_000;
const SLICE = 1_000;
const WARMUP_ROUNDS = 2;

type Save = (entries: readonly SnapshotEntry[], nowMs: number) => void;

/** One round: charge every agent, then time each slice's drain and save. */
async function round1(limiter: Limiter, save: Save, settle: () => Promise<void>) {
  const now = Date.now();
  for (let i = 0; i < AGENTS; i++) limiter.check(`agent-${i}`, 1, now);
  const times: number[] = [];
  while (limiter.dirtyCount('snapshot') > 0) {
    const started = performance.now();
    save(drainChangedBuckets(limiter, now, SLICE), now);
    times.push(performance.now() - started);
    await settle();
  }
  return times;
}

export async function main(args: readonly string[]): Promise<void> {
  const rounds = Number(args[0] ?? 12);
  if (!Number.isInteger(rounds) || rounds <= WARMUP_ROUNDS) {
    throw new Error(`snapshot bench: rounds must be an integer above ${WARMUP_ROUNDS}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'openclaw-snapshot-bench-'));
  const limiter = new Limiter({
    nodeId: 'bench',
    incarnation: 1,
    initialAgents: AGENTS,
    defaultPolicy: definePolicy([
      { name: 'requests', capacity: 1e9, refill: 1e9, per: 'second' },
      { name: 'tokens', resource: 'tokens', capacity: 1e9, refill: 1e9, per: 'hour' },
    ]),
  });
  const store = new SqliteSnapshotStore(dir);
  const channel = new MessageChannel();
  let id = 0;
  // As the store does: each limit's JSON made once.
  const limitJson = new Map<object, string>();
  const contenders: Record<string, { save: Save; settle: () => Promise<void> }> = {
    ours: {
      save: (entries, nowMs) => store.save(entries, [], nowMs),
      settle: () => store.flush(),
    },
    baseline: {
      save: (entries, nowMs) => {
        const buckets: unknown[] = [];
        for (const e of entries) {
          const json = limitJson.get(e.savedLimit) ?? JSON.stringify(e.savedLimit);
          limitJson.set(e.savedLimit, json);
          buckets.push(e.agentId, e.limit, encodeBucket(e.state), json);
        }
        channel.port1.postMessage({ id: id++, buckets, evicted: [], nowMs });
      },
      settle: () => new Promise((resolve) => setImmediate(resolve)),
    },
  };
  const times: Record<string, number[]> = { ours: [], baseline: [] };
  const load = loadAverage();
  try {
    for (let r = 0; r < rounds; r++) {
      // ABBA: each contender goes first in half the pairs.
      const order = r % 4 === 1 || r % 4 === 2 ? ['baseline', 'ours'] : ['ours', 'baseline'];
      for (const name of order) {
        const contender = contenders[name] as (typeof contenders)[string];
        const slices = await round1(limiter, contender.save, contender.settle);
        if (r >= WARMUP_ROUNDS) times[name]?.push(...slices);
      }
      progress(`snapshot bench: round ${r + 1}/${rounds}`);
    }
  } finally {
    channel.port1.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const git = gitState();
  console.log(
    `snapshot bench: ${AGENTS} agents × 2 limits, slices of ${SLICE} agents, ${rounds - WARMUP_ROUNDS} counted rounds; commit ${git.commit}${git.packagesDirty ? ' (packages modified)' : ''}; load average ${load.join(' ')}`,
  );
  const ours = Float64Array.from(times.ours as number[]).sort();
  const baseline = Float64Array.from(times.baseline as number[]).sort();
  const rows = [
    ['per slice', 'ours ms', 'baseline ms', 'baseline ÷ ours'],
    ...(
      [
        ['median', 0.5],
        ['p90', 0.9],
        ['max', 1],
      ] as const
    ).map(([label, p]) => {
      const a = percentile(ours, p);
      const b = percentile(baseline, p);
      return [label, String(round(a, 2)), String(round(b, 2)), `${round(b / a, 2)}×`];
    }),
  ];
  console.log(table(rows));
}
