export {
  AgentBudgets,
  type BudgetSpec,
  type BudgetStatus,
  type ChargeKind,
  type Crossing,
  type FleetSpend,
} from './budget.js';
export {
  type CalendarPeriod,
  isValidTimeZone,
  localMidnight,
  offsetMs,
  type Window,
  windowAt,
} from './calendar.js';
export {
  divRoundHalfEven,
  formatMicros,
  MAX_MICROS,
  MICROS_PER_UNIT,
  parseMicros,
  tokenCostMicros,
  tokenCostMicrosSafe,
  toSafeMicros,
} from './money.js';
export { PatternTable } from './pattern.js';
export {
  compilePriceBook,
  type ModelRule,
  type ModelRuleSpec,
  type PriceBook,
  type PriceBookSpec,
  type PriceSpec,
  type Prices,
  type PriceVersionSpec,
  PricingSpecError,
  promptTokens,
  type Rating,
  rate,
  ruleFor,
  TOKEN_CLASSES,
  type TokenClass,
  totalTokens,
  type Unpriced,
  type Usage,
  versionAt,
} from './pricing.js';
