export { Limiter, type LimiterOptions } from './limiter.js';
export type { AgentStatus, Decision, LimitStatus, MergeReport, RefundResult } from './types.js';
