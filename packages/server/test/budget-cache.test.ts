import type { BudgetSpec } from '@openclaw-edge/rating';
import { GroupCommitWriter, type LedgerRow, openSqliteLedger } from '@openclaw-edge/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// Internal: the cache is the composition root's, not part of the package's API.
import { BudgetCache } from '../src/rating/budget-book.js';
import { BudgetReplica } from '../src/rating/budget-replica.js';
import { scratchDir } from './harness.js';

const NOW = Date.parse('2026-03-10T12:00:00Z');
const daily: BudgetSpec = {
  name: 'daily',
  amountMicros: 1_000_000,
  window: { kind: 'calendar', period: 'day' },
  onError: 'deny',
  thresholds: [],
};
const row = (eventId: string, agentId: string, costMicros: number): LedgerRow => ({
  eventId,
  agentId,
  timeMs: NOW,
  model: 'm',
  rule: 'm',
  currency: 'USD',
  inputTokens: 1,
  cachedInputTokens: 0,
  cacheWriteTokens: 0,
  outputTokens: 0,
  reasoningTokens: 0,
  requests: 1,
  totalTokens: 1,
  costMicros,
  rating: '{}',
  attributes: null,
  recordedMs: NOW,
});

/**
 * A SQLite ledger, its group-commit writer and a budget cache over them (hooks registered in
 * the calling describe), with what the service does after a commit
 * (RatingService.chargeCommitted) and an agent's spend as the cache reports it.
 */
function cacheFixture() {
  const scratch = scratchDir();
  const store = openSqliteLedger(scratch.dir);
  const writer = new GroupCommitWriter(store, 1, 100);
  const cache = new BudgetCache(() => [daily], 'UTC', store, writer);
  beforeAll(() => store.migrate());
  afterAll(async () => {
    await writer.close();
    await store.close();
    scratch.cleanup();
  });
  const commitAndCharge = async (r: LedgerRow) => {
    const outcome = await writer.write(r);
    if (outcome.status !== 'recorded') return;
    const loaded = cache.peek(r.agentId);
    if (loaded !== undefined) loaded.charge(r.costMicros, r.timeMs, NOW, 'commit');
    else cache.committedUnloaded(r.agentId, r.costMicros, r.timeMs, NOW);
  };
  const spent = async (agent: string) =>
    (await cache.get(agent, NOW)).statuses(NOW)[0]?.spentMicros;
  return { store, writer, cache, commitAndCharge, spent };
}

describe('budget cache', () => {
  const { store, writer, cache, commitAndCharge, spent } = cacheFixture();

  it('counts every committed event exactly once, whether it lands before, during or after the load', async () => {
    await commitAndCharge(row('a1', 'a', 100)); // before any load: the load reads it
    const writes = [commitAndCharge(row('a2', 'a', 200)), commitAndCharge(row('a3', 'a', 400))];
    const loading = cache.get('a', NOW); // queued between batches
    const later = [commitAndCharge(row('a4', 'a', 800)), commitAndCharge(row('a2', 'a', 200))];
    await Promise.all([...writes, loading, ...later]);
    await commitAndCharge(row('a5', 'a', 1600)); // after the load: charged in memory
    expect(await spent('a')).toBe(100 + 200 + 400 + 800 + 1600);
    expect(await store.spent('a', 0, NOW * 2)).toBe(3100);
  });

  it('agents asked for together load in one read', async () => {
    await commitAndCharge(row('m1', 'many-1', 10));
    await commitAndCharge(row('m2', 'many-7', 70));
    const readsBefore = writer.stats().reads;
    const all = await Promise.all(
      Array.from({ length: 50 }, (_, i) => cache.get(`many-${i}`, NOW)),
    );
    expect(writer.stats().reads - readsBefore).toBe(1);
    expect(all[1]?.statuses(NOW)[0]?.spentMicros).toBe(10);
    expect(all[7]?.statuses(NOW)[0]?.spentMicros).toBe(70);
    expect(all[2]?.statuses(NOW)[0]?.spentMicros).toBe(0);
  });

  it('forgets idle agents unless pinned, and reads them again from the ledger', async () => {
    await commitAndCharge(row('b1', 'b', 300));
    await commitAndCharge(row('c1', 'c', 500));
    expect(await spent('b')).toBe(300);
    expect(await spent('c')).toBe(500);
    expect(cache.evictIdle(NOW + 60_000, 120_000, () => false)).toBe(0);
    expect(
      cache.evictIdle(NOW + 200_000, 120_000, (agent) => agent === 'c'),
    ).toBeGreaterThanOrEqual(2);
    expect(cache.peek('b')).toBeUndefined();
    expect(cache.peek('c')).toBeDefined();
    await commitAndCharge(row('b2', 'b', 50)); // not loaded: not charged in memory...
    expect(await spent('b')).toBe(350); // ...but counted by the reload
  });

  it('a reload drops loaded agents; a load still queued reads under the new config', async () => {
    expect(cache.peek('c')).toBeDefined();
    const pending = cache.get('d', NOW);
    cache.reconfigure(() => [{ ...daily, amountMicros: 5 }], 'UTC');
    expect(cache.peek('c')).toBeUndefined();
    expect((await pending).statuses(NOW)[0]?.amountMicros).toBe(5);
    expect((await cache.get('c', NOW)).statuses(NOW)[0]).toMatchObject({
      amountMicros: 5,
      spentMicros: 500,
    });
  });
});

describe('budget cache with fleet counters', () => {
  const { cache, commitAndCharge, spent } = cacheFixture();
  const fleet = new BudgetReplica('here#1', (agent, budget, start) =>
    cache.windowEnd(agent, budget, start),
  );
  cache.replicate(fleet);
  const today = Date.parse('2026-03-10T00:00:00Z');

  it('own commits reach the counter whether or not the agent is loaded, and count once', async () => {
    await commitAndCharge(row('f1', 'f', 100)); // not loaded
    expect(fleet.fleetSpent('f', 'daily', today)).toBe(100);
    expect(await spent('f')).toBe(100); // the ledger and the counter hold it: counted once
    await commitAndCharge(row('f2', 'f', 200)); // loaded
    expect(fleet.fleetSpent('f', 'daily', today)).toBe(300);
    expect(await spent('f')).toBe(300);
    expect(cache.windowEnd('f', 'daily', today)).toBe(today + 86_400_000);
  });

  it("another replica's counter raises the spend above this ledger's", async () => {
    const peer = new BudgetReplica('peer#1', () => today + 86_400_000);
    peer.add('g', 'daily', today, 999_700);
    await commitAndCharge(row('g1', 'g', 50));
    expect(await spent('g')).toBe(50);
    fleet.merge(peer.entriesOfAgent('g'), NOW);
    expect(await spent('g')).toBe(999_750);
    const b = await cache.get('g', NOW);
    expect(b.deniedBy(250, NOW)).toBeUndefined();
    expect(b.deniedBy(251, NOW)?.name).toBe('daily');
  });
});
