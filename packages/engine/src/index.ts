export { type ChangeFeed, Limiter, type LimiterOptions, type PolicySource } from './limiter.js';
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
