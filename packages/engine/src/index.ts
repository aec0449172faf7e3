export { type ChangeFeed, Limiter, type LimiterOptions, type PolicySource } from './limiter.js';
export type { AgentStatus, Decision, LimitStatus, MergeReport, RefundResult } from './types.js';
