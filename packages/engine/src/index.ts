export {
  type ChangeFeed,
  DEFAULT_MAX_SYNC_LAG_MS,
  DEFAULT_SHARE_FLOOR,
  Limiter,
  type LimiterOptions,
  type PolicySource,
  type ShareStatus,
} from './limiter.js';
export type {
  AgentStatus,
  BucketReport,
  Decision,
  LimitStatus,
  LimitTotals,
  MergeReport,
  RankBy,
  RefundResult,
  TopAgent,
} from './types.js';
