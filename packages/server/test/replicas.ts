import { type AgentPolicy, definePolicy, encodeEntries } from '@openclaw-edge/core';
import { Limiter } from '@openclaw-edge/engine';
import pino from 'pino';
import type { BudgetReplica } from '../src/rating/budget-replica.js';
import { FrameCodec, FrameKind } from '../src/replication/frame.js';
import { type ReplicationTransport, Replicator } from '../src/replication/replicator.js';

/** The fleet secret of the in-process replication tests. */
export const SECRET = 'a-shared-secret-of-some-length';
/** 100 tokens, refilling 1 a minute: nothing refills measurably during a test. */
export const policy = definePolicy([{ name: 'rpm', capacity: 100, refill: 1, per: 'minute' }]);

/** An in-process replica: a limiter, its replicator and a real transport. */
export interface Replica<T extends ReplicationTransport> {
  readonly limiter: Limiter;
  readonly replicator: Replicator;
  readonly transport: T;
}

/**
 * Starts a replica over the transport `makeTransport` builds for its limiter (ticks every 20 ms,
 * anti-entropy every 200 ms, start-up sync bounded at `startupMs`, 2 s by default) and adds it
 * to `running`.
 */
export async function startInProcessReplica<T extends ReplicationTransport>(
  running: Replica<ReplicationTransport>[],
  nodeId: string,
  makeTransport: (limiter: Limiter) => T,
  options: {
    secret?: string;
    incarnation?: number;
    policy?: AgentPolicy;
    budgets?: BudgetReplica;
    startupMs?: number;
  } = {},
): Promise<Replica<T>> {
  const incarnation = options.incarnation ?? Date.now();
  const limiter = new Limiter({ nodeId, incarnation, defaultPolicy: options.policy ?? policy });
  const transport = makeTransport(limiter);
  const replicator = new Replicator({
    limiter,
    incarnation,
    transport,
    codec: new FrameCodec(options.secret ?? SECRET, 1024 * 1024),
    logger: pino({ level: 'silent' }),
    syncIntervalMs: 20,
    antiEntropyIntervalMs: 200,
    ...(options.budgets === undefined ? {} : { budgets: options.budgets }),
  });
  await replicator.start(options.startupMs ?? 2000);
  const replica = { limiter, replicator, transport };
  running.push(replica);
  return replica;
}

/** What remains of the agent's first limit on this replica now. */
export function remaining(r: { readonly limiter: Limiter }, agentId: string): number {
  return r.limiter.peek(agentId, Date.now()).limits[0]?.remaining ?? Number.NaN;
}

/** A delta claiming to come from `nodeId`, signed with a secret that is not the fleet's. */
export function forgedDelta(nodeId: string): Buffer {
  return new FrameCodec('not-the-fleet-secret-at-all', 1024 * 1024).encode({
    kind: FrameKind.delta,
    nodeId,
    incarnation: 1,
    seq: 1,
    sentAtMs: Date.now(),
    payload: encodeEntries([]),
  });
}
