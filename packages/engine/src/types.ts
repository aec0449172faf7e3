import type { AgentPolicy, Limit } from '@openclaw-edge/core';

/**
 * Outcome of one check across an agent's limits. Allocation-light on purpose: per-limit detail
 * is available from `peek`, which the HTTP layer calls when it renders a response body.
 */
export interface Decision {
  readonly allowed: boolean;
  /** Milliseconds until the same cost could pass: 0 when allowed, Infinity when it never can. */
  readonly retryAfterMs: number;
  /** The limit that denied, or when allowed the checked limit closest to exhaustion. */
  readonly limit: Limit;
  /** Tokens left in `limit` after this decision; negative when replicas together overspent. */
  readonly remaining: number;
  /** Milliseconds until `limit` is full again. */
  readonly resetMs: number;
}

/** One limit's state as `peek` reports it. */
export interface LimitStatus {
  readonly limit: Limit;
  readonly remaining: number;
  /** Milliseconds until the bucket is full again. */
  readonly resetMs: number;
}

/** Every limit of an agent, read without charging. */
export interface AgentStatus {
  readonly agentId: string;
  /** False when the engine holds no state for the agent (never seen, or evicted while full). */
  readonly tracked: boolean;
  /** The policy the agent is governed by (the limits below are its limits, in order). */
  readonly policy: AgentPolicy;
  readonly limits: readonly LimitStatus[];
}

/** What `refund` credited per limit (a refund never fills a bucket past capacity). */
export interface RefundResult {
  readonly limit: Limit;
  readonly refunded: number;
}

/** Counts from applying a batch of remote bucket states. */
export interface MergeReport {
  /** Entries merged into local state. */
  readonly applied: number;
  /** Entries of an older version (revision, params) than the local bucket: nothing to learn. */
  readonly stale: number;
  /** Entries for a limit the agent's local policy does not have. */
  readonly unknownLimit: number;
}

/** How `Limiter.rankAgents` orders agents for their own metric series. */
export type RankBy = 'activity' | 'utilisation';

/** One limit (by name) summed over every tracked agent, for the metrics aggregates. */
export interface LimitTotals {
  readonly limit: string;
  readonly resource: string;
  /** Agents tracked with this limit. */
  agents: number;
  capacity: number;
  /** Tokens available (an overspent bucket counts as 0). */
  available: number;
  /** Refill in tokens per second. */
  fillPerSecond: number;
  /** Capacity and available summed over the agents outside the top set only. */
  otherCapacity: number;
  otherAvailable: number;
}

/** A top agent's buckets and local usage counters. */
export interface TopAgent {
  readonly agentId: string;
  readonly limits: readonly LimitStatus[];
  /** Units charged by this replica's allowed decisions, by resource (monotonic while tracked). */
  readonly used: ReadonlyMap<string, number>;
}

/** Everything the metrics need from the engine, computed in one pass over the agents. */
export interface BucketReport {
  readonly agents: number;
  /** By limit name, in the order first seen. */
  readonly limits: readonly LimitTotals[];
  /** The agents of the last ranking, highest first. */
  readonly top: readonly TopAgent[];
  /**
   * Units charged to agents while they were outside the top set, by resource: monotonic, so it
   * can be exported as a counter for "every other agent".
   */
  readonly otherUsed: ReadonlyMap<string, number>;
}
