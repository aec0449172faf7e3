import { type AgentPolicy, type Limit, MAX_LIMITS_PER_AGENT } from '@openclaw-edge/core';
import { limitFromJson, type OverrideRecord } from '../snapshot/snapshot-store.js';

export type { OverrideRecord };

/*
 * Runtime policy overrides (`PUT/DELETE /v1/agents/{id}/policy`) across the fleet: a
 * last-writer-wins register per agent, ordered by (time, node id), so every replica that has
 * seen the same changes holds the same override whatever the order they arrived in. The
 * records (removals too) are kept in the snapshot, so a restart keeps their order.
 */

/** Wire form of one record (a frame payload is a JSON array of them). */
interface OverrideJson {
  readonly agent_id: string;
  readonly limits: Limit[] | null;
  readonly at: number;
  readonly node: string;
}

/** Most records one frame may carry. */
const MAX_RECORDS = 100_000;

/** Whether `a` is a later change than `b`. */
function later(a: OverrideRecord, b: OverrideRecord): boolean {
  return a.at !== b.at ? a.at > b.at : a.node > b.node;
}

/** The overrides this replica knows, with the order that decides between concurrent changes. */
export class OverrideLog {
  private readonly records = new Map<string, OverrideRecord>();

  /** Takes `record` if it is later than what is held for its agent; true when it was taken. */
  offer(record: OverrideRecord): boolean {
    const held = this.records.get(record.agentId);
    if (held !== undefined && !later(record, held)) return false;
    this.records.set(record.agentId, record);
    return true;
  }

  all(): OverrideRecord[] {
    return [...this.records.values()];
  }

  /**
   * A change made on `node` now: stamped `nowMs`, or just after the record held for the agent
   * when that one is later (a peer's clock ahead of this one), so the change made here wins.
   */
  stamp(agentId: string, policy: AgentPolicy | undefined, nowMs: number, node: string) {
    const held = this.records.get(agentId);
    const record: OverrideRecord = {
      agentId,
      policy,
      at: held === undefined || nowMs > held.at ? nowMs : held.at + 1,
      node,
    };
    this.records.set(agentId, record);
    return record;
  }
}

export function encodeOverrides(records: readonly OverrideRecord[]): Buffer {
  const out: OverrideJson[] = records.map((r) => ({
    agent_id: r.agentId,
    limits: r.policy === undefined ? null : [...r.policy.limits],
    at: r.at,
    node: r.node,
  }));
  return Buffer.from(JSON.stringify(out), 'utf8');
}

/** Decodes {@link encodeOverrides}; throws on anything that is not a list of valid records. */
export function decodeOverrides(payload: Buffer): OverrideRecord[] {
  const parsed: unknown = JSON.parse(payload.toString('utf8'));
  if (!Array.isArray(parsed) || parsed.length > MAX_RECORDS) {
    throw new Error('overrides: not a list of records');
  }
  return parsed.map((item: unknown) => {
    const r = item as Partial<OverrideJson> | null;
    if (
      r === null ||
      typeof r !== 'object' ||
      typeof r.agent_id !== 'string' ||
      r.agent_id.length === 0 ||
      typeof r.node !== 'string' ||
      typeof r.at !== 'number' ||
      !Number.isFinite(r.at) ||
      !(
        r.limits === null ||
        (Array.isArray(r.limits) && r.limits.length > 0 && r.limits.length <= MAX_LIMITS_PER_AGENT)
      )
    ) {
      throw new Error('overrides: malformed record');
    }
    const limits = r.limits === null ? null : r.limits.map(limitFromJson);
    if (limits !== null && new Set(limits.map((l) => l.name)).size !== limits.length) {
      throw new Error('overrides: duplicate limit names');
    }
    return {
      agentId: r.agent_id,
      policy: limits === null ? undefined : { limits },
      at: r.at,
      node: r.node,
    };
  });
}
