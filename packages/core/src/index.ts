export { hasLoneSurrogate, MAX_AGENT_ID_LENGTH, validateAgentId } from './agent-id.js';
export {
  ADMISSION_EPSILON,
  availableTokens,
  type BucketState,
  type ConsumeResult,
  createBucket,
  missingTokens,
  msUntilAvailable,
  msUntilFull,
  normalise,
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
  encodeBucketStates,
  encodeEntries,
  MAX_ID_BYTES,
  MAX_SLOTS,
  type PackedStates,
  STATE_FORMAT_VERSION,
} from './codec.js';
export {
  describeValue,
  EdgeError,
  type EdgeErrorCode,
  ERROR_CODES,
  InvalidAgentIdError,
  InvalidCostError,
  InvalidPolicyError,
  InvalidStateError,
  UnknownLimitError,
} from './errors.js';
export { globToRegExp, isGlob } from './glob.js';
export { compareVersions, isCoveredBy, mergeBuckets, sameBucket } from './merge.js';
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
  limitFingerprint,
  MAX_LIMITS_PER_AGENT,
  MAX_TOKENS,
  PERIOD_MS,
  type RefillPeriod,
} from './policy.js';
