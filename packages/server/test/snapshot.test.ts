import { join } from 'node:path';
import { definePolicy } from '@openclaw-edge/core';
import { Limiter } from '@openclaw-edge/engine';
import { EdgeService, restoreSnapshot, SqliteSnapshotStore } from '@openclaw-edge/server';
import { afterEach, describe, expect, it } from 'vitest';
import { scratchDir, writeConfig } from './harness.js';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('snapshots', () => {
  it('are written in slices, and a restart restores every sliced agent', async () => {
    const s = scratchDir();
    cleanups.push(s.cleanup);
    const config = writeConfig(
      s.dir,
      `data_dir: ${join(s.dir, 'data')}\nlogging: { level: silent }\nlimits: [{ name: r, capacity: 10, refill: 1, per: hour }]\n`,
    );
    const service = await EdgeService.start({
      configPath: config,
      env: { PORT: '0' },
      watchConfig: false,
    });
    cleanups.push(() => service.stop());
    const now = Date.now();
    for (let i = 0; i < 2_500; i++) service.limiter.check(`a${i}`, 3, now);
    // 2,500 changed agents in slices of 1,000: two slices leave work, the third finishes it.
    expect(service.snapshot(1_000)).toBe(true);
    expect(service.snapshot(1_000)).toBe(true);
    expect(service.snapshot(1_000)).toBe(false);

    const store = new SqliteSnapshotStore(join(s.dir, 'data'));
    const fresh = new Limiter({
      nodeId: 'restored',
      incarnation: 2,
      defaultPolicy: definePolicy([{ name: 'r', capacity: 10, refill: 1, per: 'hour' }]),
    });
    expect(restoreSnapshot(fresh, store.load(), now)).toMatchObject({
      agents: 2_500,
      buckets: 2_500,
    });
    store.close();
    expect(fresh.peek('a0', now).limits[0]?.remaining).toBeCloseTo(7, 6);
    expect(fresh.peek('a2499', now).limits[0]?.remaining).toBeCloseTo(7, 6);
  });
});
