export {
  ADMISSION_EPSILON,
  availableTokens,
  type BucketState,
  type ConsumeResult,
  createBucket,
  msUntilAvailable,
  msUntilFull,
  rebase,
  refund,
  type SlotCounters,
  tryConsume,
  uncappedTokens,
  usedTokens,
} from './bucket.js';
export {
  type BucketEntry,
  type BucketStateJson,
  bucketFromJson,
  bucketToJson,
  decodeBucket,
  decodeEntries,
  encodeBucket,
  encodeEntries,
  MAX_ID_BYTES,
  MAX_SLOTS,
  STATE_FORMAT_VERSION,
} from './codec.js';
export {
  describeValue,
  EdgeError,
  type EdgeErrorCode,
  InvalidCostError,
  InvalidPolicyError,
  InvalidStateError,
  UnknownLimitError,
} from './errors.js';
export { isCoveredBy, mergeBuckets, sameBucket } from './merge.js';
export {
  type Cost,
  costFor,
  MAX_COST,
  type MultiConsumeResult,
  tryConsumeAll,
  validateCost,
} from './multi-limit.js';
export {
  type AdmissionMode,
  type AgentPolicy,
  defineLimit,
  definePolicy,
  type Limit,
  type LimitSpec,
  MAX_LIMITS_PER_AGENT,
  MAX_TOKENS,
  PERIOD_MS,
  type RefillPeriod,
} from './policy.js';
