import { type AgentPolicy, definePolicy, globToRegExp, isGlob } from '@openclaw-edge/core';
import type { PolicySource } from '@openclaw-edge/engine';
import type { Config } from './schema.js';

/** The engine-facing form of a config's limits: the default policy and a source for the rest. */
export interface CompiledPolicies {
  readonly defaultPolicy: AgentPolicy;
  readonly source: PolicySource;
  /** Named tiers, for the API (`PUT …/policy` may name a tier). */
  readonly tiers: ReadonlyMap<string, AgentPolicy>;
}

/**
 * Compiles limits, tiers and per-agent rules. An exact id beats any pattern; among patterns the
 * first listed wins. The engine keeps the state of limits whose parameters did not change, so a
 * reload only rebases what it actually changed.
 */
export function compilePolicies(config: Config): CompiledPolicies {
  const defaultPolicy = definePolicy(config.limits, 'limits');
  const tiers = new Map<string, AgentPolicy>();
  for (const [name, tier] of Object.entries(config.tiers)) {
    tiers.set(name, definePolicy(tier.limits, `tiers.${name}.limits`));
  }
  const exact = new Map<string, AgentPolicy>();
  const patterns: { regex: RegExp; policy: AgentPolicy }[] = [];
  config.agents.forEach((rule, i) => {
    const policy =
      rule.tier !== undefined
        ? (tiers.get(rule.tier) as AgentPolicy)
        : definePolicy(rule.limits ?? [], `agents[${i}].limits`);
    if (!isGlob(rule.match)) {
      if (!exact.has(rule.match)) exact.set(rule.match, policy);
    } else {
      patterns.push({ regex: globToRegExp(rule.match), policy });
    }
  });
  const source: PolicySource = (agentId) => {
    const policy = exact.get(agentId);
    if (policy !== undefined) return policy;
    for (const p of patterns) if (p.regex.test(agentId)) return p.policy;
    return undefined;
  };
  return { defaultPolicy, source, tiers };
}
