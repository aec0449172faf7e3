import type { AgentPolicy } from '@openclaw-edge/core';

/**
 * Interned policies, so an agent's block can name its policy by a number: the decision path
 * then reads one small, hot array instead of a pointer per agent. Reference-counted, so
 * policies of removed overrides do not pile up.
 */
export class PolicyTable {
  private readonly policies: (AgentPolicy | undefined)[] = [];
  private readonly refs: number[] = [];
  private readonly ids = new Map<AgentPolicy, number>();
  private readonly free: number[] = [];

  /** The id of `policy`, counting one more holder. */
  acquire(policy: AgentPolicy): number {
    let id = this.ids.get(policy);
    if (id === undefined) {
      id = this.free.pop() ?? this.policies.length;
      this.policies[id] = policy;
      this.refs[id] = 0;
      this.ids.set(policy, id);
    }
    this.refs[id] = (this.refs[id] as number) + 1;
    return id;
  }

  /** Drops one holder of `id`; the entry is freed with its last holder. */
  release(id: number): void {
    const refs = (this.refs[id] as number) - 1;
    this.refs[id] = refs;
    if (refs > 0) return;
    this.ids.delete(this.policies[id] as AgentPolicy);
    this.policies[id] = undefined;
    this.free.push(id);
  }

  get(id: number): AgentPolicy {
    return this.policies[id] as AgentPolicy;
  }
}
