import type { Cost } from '@openclaw-edge/core';
import type { AgentStatus, Decision } from '@openclaw-edge/engine';
import type { AgentBudgets, BudgetStatus } from '@openclaw-edge/rating';
import { HttpProblem } from '../http/problem.js';
import { limitsView } from '../http/views.js';
import type { RatingService } from './rating-service.js';
import { budgetView } from './views.js';

/** A cost admitted against limits and budgets, to be kept or given back. */
export interface Admitted {
  readonly agentId: string;
  readonly limitCost: Cost;
  readonly costMicros: number;
  readonly timeMs: number;
  readonly budgets: AgentBudgets | undefined;
  /** Set when budgets could not be checked and every one of them is fail-open. */
  readonly unchecked?: string;
  readonly decision: Decision;
  readonly status: AgentStatus;
}

/**
 * Admission, all or nothing: the agent's rate limits are charged `limitCost`, then every budget
 * must have `costMicros` left; if any budget lacks it the limits are refunded and the request is
 * denied (402 BUDGET_EXCEEDED). The cost is then held in the budgets at once, so concurrent
 * requests see each other (the fix for "all slipped past the budget"). Throws a problem on denial.
 */
export async function admit(
  service: RatingService,
  agentId: string,
  limitCost: Cost,
  costMicros: number,
  timeMs: number,
  nowMs: number,
): Promise<Admitted> {
  const check = await service.checkBudgets(agentId, nowMs);
  if (!check.ok && !check.failOpen) {
    throw new HttpProblem(
      'BUDGET_UNAVAILABLE',
      `the agent's budgets cannot be checked (${check.reason}) and are fail-closed (on_error: deny)`,
      { agent_id: agentId },
    );
  }
  const limiter = service.deps.limiter;
  const { decision, status } = limiter.checkAndPeek(agentId, limitCost, nowMs);
  if (!decision.allowed) {
    const finite = Number.isFinite(decision.retryAfterMs);
    throw new HttpProblem(
      finite ? 'RATE_LIMITED' : 'COST_EXCEEDS_CAPACITY',
      finite
        ? `limit "${decision.limit.name}" has too few tokens; retry in ${decision.retryAfterMs} ms`
        : `the request exceeds the capacity of limit "${decision.limit.name}"; it can never be admitted`,
      {
        agent_id: agentId,
        limit: decision.limit.name,
        retry_after_ms: finite ? decision.retryAfterMs : null,
        limits: limitsView(status),
      },
    );
  }
  const budgets = check.ok ? check.budgets : undefined;
  const denied = budgets?.deniedBy(costMicros, nowMs);
  if (budgets !== undefined && denied !== undefined) {
    limiter.refund(agentId, limitCost, nowMs);
    service.countDenial();
    throw budgetDenial(agentId, costMicros, denied, budgets, nowMs);
  }
  if (budgets !== undefined) {
    service.countCrossings(budgets.charge(costMicros, timeMs, nowMs, 'hold'));
  }
  return {
    agentId,
    limitCost,
    costMicros,
    timeMs,
    budgets,
    decision,
    status,
    ...(check.ok ? {} : { unchecked: check.reason }),
  };
}

/**
 * The admitted cost's write was recorded: its hold becomes committed spend (which replication
 * shares with the fleet, for calendar budgets).
 */
export function commit(a: Admitted, nowMs: number): void {
  a.budgets?.commitHold(a.costMicros, a.timeMs, nowMs);
}

/** Gives an admitted cost back (denied later, replayed, cancelled, expired or failed). */
export function release(
  service: RatingService,
  a: Admitted,
  nowMs: number,
  limitsToo = true,
): void {
  a.budgets?.refund(a.costMicros, a.timeMs, nowMs);
  if (limitsToo) service.deps.limiter.refund(a.agentId, a.limitCost, nowMs);
}

function budgetDenial(
  agentId: string,
  costMicros: number,
  denied: BudgetStatus,
  budgets: AgentBudgets,
  nowMs: number,
): HttpProblem {
  return new HttpProblem(
    'BUDGET_EXCEEDED',
    `budget "${denied.name}" has ${Math.max(0, denied.remainingMicros)} micro-units left, the request needs ${costMicros}; it resets in ${denied.resetMs} ms`,
    {
      agent_id: agentId,
      budget: denied.name,
      cost_micros: costMicros,
      retry_after_ms: denied.resetMs,
      budgets: budgets.statuses(nowMs).map(budgetView),
    },
  );
}
