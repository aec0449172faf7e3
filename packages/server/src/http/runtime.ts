import type { AgentPolicy } from '@openclaw-edge/core';
import type { Limiter } from '@openclaw-edge/engine';
import type { ApiKeys } from '../auth/api-keys.js';
import type { RatingService } from '../rating/rating-service.js';
import type { Reservations } from '../rating/reservations.js';
import type { ReplicationStatus } from '../replication/replicator.js';

/**
 * What the HTTP layer needs from the running service. Getters, because a config reload swaps
 * keys and tiers while the app keeps serving.
 */
export interface EdgeRuntime {
  readonly limiter: Limiter;
  /** Wall-clock milliseconds (injected so tests can control time). */
  now(): number;
  apiKeys(): ApiKeys;
  tiers(): ReadonlyMap<string, AgentPolicy>;
  /** True once config is loaded and state restored. */
  isReady(): boolean;
  /** Called after a runtime policy override is set (`policy`) or removed (undefined). */
  overrideChanged(agentId: string, policy: AgentPolicy | undefined): void;
  /** Replication status; undefined for a lone replica. */
  replication(): ReplicationStatus | undefined;
  readonly maxBatch: number;
  readonly bodyLimitBytes: number;
  /** Rating (usage, rate, reservations); absent in an app built without a ledger. */
  readonly rating?: {
    readonly service: RatingService;
    readonly reservations: Reservations;
    /** The budgets' time zone, for usage grouped by day. */
    timeZone(): string;
  };
}
