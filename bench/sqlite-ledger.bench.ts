/**
 * Where the SQLite ledger's time goes, without HTTP: the real store (`openSqliteLedger`, its
 * migrations and its `append`, through its writer thread, one batch at a time) writing batches
 * of events, in-process, on the data disk and on
 * tmpfs (`/dev/shm`, where fsync costs nothing), with synchronous FULL and NORMAL, at several
 * batch sizes. The difference between the two places is the price of durability on this disk;
 * the tmpfs figure is SQLite's own CPU per row.
 *
 *   npm run bench -- sqlite-ledger [events]     (default 100000 per case)
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LedgerRow } from '../packages/server/src/ledger/ledger-store.js';
import { openSqliteLedger } from '../packages/server/src/ledger/sqlite.js';
import { fmtInt, gitState, loadAverage, progress, round, table } from './support.js';

const BATCHES = [100, 1000, 5000];

function row(i: number): LedgerRow {
  const now = Date.now();
  return {
    eventId: randomUUID(),
    agentId: `agent-${i % 1000}`,
    timeMs: now,
    model: 'gpt-4o',
    rule: 'gpt-*',
    currency: 'USD',
    inputTokens: 1000,
    cachedInputTokens: 0,
    cacheWriteTokens: 0,
    outputTokens: 1000,
    reasoningTokens: 0,
    requests: 1,
    totalTokens: 2000,
    costMicros: 12_500,
    rating: JSON.stringify({ lines: { input: 2500, output: 10_000 }, version: 1 }),
    attributes: null,
    recordedMs: now,
  };
}

async function measure(
  place: string,
  synchronous: 'full' | 'normal',
  batch: number,
  events: number,
): Promise<number> {
  const dir = mkdtempSync(join(place, 'openclaw-sqlite-bench-'));
  try {
    const store = openSqliteLedger(dir, synchronous);
    await store.migrate();
    let inStore = 0n;
    for (let i = 0; i < events; i += batch) {
      const rows = Array.from({ length: Math.min(batch, events - i) }, (_, k) => row(i + k));
      const t0 = process.hrtime.bigint();
      await store.append(rows);
      inStore += process.hrtime.bigint() - t0;
    }
    await store.close();
    return Number(inStore) / 1000 / events;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function main(args: readonly string[]): Promise<void> {
  const events = args[0] === undefined ? 100_000 : Number(args[0]);
  if (!Number.isSafeInteger(events) || events < 1000) {
    throw new Error(`sqlite-ledger bench: events must be an integer ≥ 1000, not "${args[0]}"`);
  }
  const places: [string, string][] = [['data disk', tmpdir()]];
  if (existsSync('/dev/shm')) places.push(['tmpfs', '/dev/shm']);
  const rows: string[][] = [['where', 'synchronous', 'batch', 'µs per event', 'events/s']];
  const results: Record<string, unknown>[] = [];
  for (const [label, place] of places) {
    for (const synchronous of ['full', 'normal'] as const) {
      for (const batch of BATCHES) {
        progress(`${label}, synchronous ${synchronous}, batches of ${batch}`);
        const us = await measure(place, synchronous, batch, events);
        rows.push([label, synchronous, String(batch), us.toFixed(2), fmtInt(1e6 / us)]);
        results.push({ where: label, synchronous, batch, us_per_event: round(us, 2) });
      }
    }
  }
  console.log(`\n${table(rows)}\n`);
  console.log(
    JSON.stringify({
      benchmark: 'sqlite-ledger',
      date: new Date().toISOString(),
      ...gitState(),
      load_average: loadAverage(),
      events_per_case: events,
      results,
    }),
  );
}
