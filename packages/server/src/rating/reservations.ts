import { randomUUID } from 'node:crypto';
import type { Usage } from '@openclaw-edge/rating';
import { HttpProblem } from '../http/problem.js';
import { type Admitted, admit, release } from './admission.js';
import { isItemError, parseUsageEvent, type UsageEvent } from './event.js';
import type { RatingService } from './rating-service.js';
import { type BudgetView, budgetView, ratingView, storedRatingView } from './views.js';

/** How long a closed reservation is remembered, so a repeated settle or cancel gets the same answer. */
const REMEMBER_CLOSED_MS = 10 * 60_000;

/** What a client asks to hold. */
export interface ReserveRequest {
  readonly reservation_id?: string;
  readonly agent_id: string;
  readonly model: string;
  readonly input_tokens?: number;
  /** Estimate input tokens from prompt size when the token count is not known (4 characters a token). */
  readonly prompt_chars?: number;
  readonly max_tokens?: number;
  readonly cached_input_tokens?: number;
  /** An explicit estimate in micro-units instead of pricing the token estimate. */
  readonly cost_micros?: number;
  readonly ttl_ms?: number;
}

interface Reservation {
  readonly id: string;
  readonly agentId: string;
  readonly model: string;
  readonly admitted: Admitted;
  readonly estimate: Usage;
  readonly createdMs: number;
  readonly expiresMs: number;
  state: 'open' | 'settling' | 'settled' | 'cancelled' | 'expired';
  closedMs?: number;
  result?: Record<string, unknown>;
}

/**
 * Reserve and settle. A reservation holds an estimate across the agent's limits and budgets at
 * once (see `admit`); settle prices the actual usage, writes it to the ledger and swaps the hold
 * for the actual charge in one step after the commit; cancel and expiry give the hold back.
 * Reservations live in memory: after a restart their holds are gone (nothing is charged twice)
 * and settling answers 404, so the caller posts the usage to /v1/usage instead.
 */
export class Reservations {
  private readonly open = new Map<string, Reservation>();
  /** Open reservations per agent. */
  private readonly holders = new Map<string, number>();
  private counters = { created: 0, settled: 0, cancelled: 0, expired: 0 };

  constructor(
    private readonly service: RatingService,
    private readonly ttlMs: () => number,
  ) {}

  async reserve(
    req: ReserveRequest,
    nowMs: number,
  ): Promise<{ created: boolean; body: Record<string, unknown> }> {
    if (req.reservation_id !== undefined) {
      const existing = this.open.get(req.reservation_id);
      if (existing !== undefined) {
        if (existing.agentId !== req.agent_id) {
          throw new HttpProblem(
            'RESERVATION_CLOSED',
            'this reservation id is taken by another agent',
          );
        }
        return { created: false, body: this.view(existing, nowMs) };
      }
    }
    const inputTokens = req.input_tokens ?? Math.ceil((req.prompt_chars ?? 0) / 4);
    const estimate: Usage = {
      inputTokens,
      cachedInputTokens: req.cached_input_tokens ?? 0,
      cacheWriteTokens: 0,
      outputTokens: req.max_tokens ?? 0,
      reasoningTokens: 0,
      requests: 1,
    };
    this.service.admitEvent({ agentId: req.agent_id, timeMs: nowMs }, nowMs);
    const rating = await this.service.price(req.agent_id, req.model, estimate, nowMs);
    const costMicros = req.cost_micros ?? rating.costMicros;
    const admitted = await admit(
      this.service,
      req.agent_id,
      this.service.limitCost(estimate, costMicros),
      costMicros,
      nowMs,
      nowMs,
    );
    const ttl = Math.min(req.ttl_ms ?? this.ttlMs(), 86_400_000);
    const r: Reservation = {
      id: req.reservation_id ?? randomUUID(),
      agentId: req.agent_id,
      model: req.model,
      admitted,
      estimate,
      createdMs: nowMs,
      expiresMs: nowMs + ttl,
      state: 'open',
    };
    this.open.set(r.id, r);
    this.hold(r.agentId, 1);
    this.counters.created++;
    return {
      created: true,
      body: { ...this.view(r, nowMs), estimate: ratingView(rating) },
    };
  }

  /** Settles with the actual usage; a repeated settle answers the first result. */
  async settle(
    id: string,
    body: Record<string, unknown>,
    authorize: (agentId: string) => void,
    nowMs: number,
  ): Promise<Record<string, unknown>> {
    const r = this.find(id, authorize);
    if (r.state === 'settled' && r.result !== undefined) return { ...r.result, replayed: true };
    if (r.state !== 'open') throw closed(r);
    const parsed = parseUsageEvent(
      {
        event_id: `rsv-${r.id}`,
        time: nowMs,
        ...body,
        agent_id: r.agentId,
        model: r.model,
      },
      '',
    );
    if (isItemError(parsed)) {
      throw new HttpProblem('INVALID_EVENT', `${parsed.field}: ${parsed.detail}`, {
        field: parsed.field,
      });
    }
    this.service.admitEvent(parsed, nowMs);
    r.state = 'settling';
    try {
      const rating = await this.service.price(r.agentId, r.model, parsed.usage, parsed.timeMs);
      const outcome = await this.service.write(parsed, rating, nowMs);
      // Swap the hold for the actual charge in one synchronous step after the commit.
      const now = nowMs;
      release(this.service, r.admitted, now, false);
      this.settleLimits(r, parsed, now);
      if (outcome.status === 'recorded') {
        const b = r.admitted.budgets;
        if (b !== undefined) {
          this.service.countCrossings(b.charge(rating.costMicros, parsed.timeMs, now, 'commit'));
        } else {
          this.service.chargeCommitted(parsed, rating, now);
        }
      }
      r.state = 'settled';
      r.closedMs = nowMs;
      this.hold(r.agentId, -1);
      this.counters.settled++;
      r.result = {
        reservation_id: r.id,
        agent_id: r.agentId,
        status: 'settled',
        event_id: parsed.eventId,
        ledger: outcome.status,
        held_micros: r.admitted.costMicros,
        rating: storedRatingView(outcome.row),
        budgets: this.budgets(r, now),
      };
      return r.result;
    } catch (error) {
      r.state = 'open';
      throw error;
    }
  }

  /** Gives the whole hold back; repeating it is harmless. */
  cancel(id: string, authorize: (agentId: string) => void, nowMs: number): Record<string, unknown> {
    const r = this.find(id, authorize);
    if (r.state === 'open') {
      release(this.service, r.admitted, nowMs);
      r.state = 'cancelled';
      r.closedMs = nowMs;
      this.hold(r.agentId, -1);
      this.counters.cancelled++;
    } else if (r.state !== 'cancelled') {
      throw closed(r);
    }
    return { ...this.view(r, nowMs), budgets: this.budgets(r, nowMs) };
  }

  /** Expires open reservations past their time (refunded) and forgets long-closed ones. */
  sweep(nowMs: number): number {
    let expired = 0;
    for (const [id, r] of this.open) {
      if (r.state === 'open' && nowMs >= r.expiresMs) {
        release(this.service, r.admitted, nowMs);
        r.state = 'expired';
        r.closedMs = nowMs;
        this.hold(r.agentId, -1);
        expired++;
      } else if (r.closedMs !== undefined && nowMs - r.closedMs > REMEMBER_CLOSED_MS) {
        this.open.delete(id);
      }
    }
    this.counters.expired += expired;
    return expired;
  }

  /** True when the agent has an open reservation (its budgets hold money the ledger lacks). */
  holdsFor(agentId: string): boolean {
    return (this.holders.get(agentId) ?? 0) > 0;
  }

  private hold(agentId: string, delta: 1 | -1): void {
    const n = (this.holders.get(agentId) ?? 0) + delta;
    if (n > 0) this.holders.set(agentId, n);
    else this.holders.delete(agentId);
  }

  stats() {
    let active = 0;
    for (const r of this.open.values()) if (r.state === 'open' || r.state === 'settling') active++;
    return {
      reservationsActive: active,
      reservationsCreated: this.counters.created,
      reservationsSettled: this.counters.settled,
      reservationsCancelled: this.counters.cancelled,
      reservationsExpired: this.counters.expired,
    };
  }

  private settleLimits(r: Reservation, actual: UsageEvent, nowMs: number): void {
    // Rate limits were charged the estimate; give back what the actual usage did not need.
    const held = r.admitted.limitCost as Record<string, number>;
    const used = this.service.limitCost(actual.usage, 0) as Record<string, number>;
    const back: Record<string, number> = {};
    for (const [k, v] of Object.entries(held)) {
      const diff = v - (used[k] ?? 0);
      if (diff > 0 && k !== 'cost_micros') back[k] = diff;
    }
    if (Object.keys(back).length > 0) this.service.deps.limiter.refund(r.agentId, back, nowMs);
  }

  private find(id: string, authorize: (agentId: string) => void): Reservation {
    const r = this.open.get(id);
    if (r === undefined) {
      throw new HttpProblem(
        'RESERVATION_NOT_FOUND',
        'no such reservation on this replica (unknown, made on another replica, forgotten after closing, or held by a server that restarted); post the usage to /v1/usage instead',
        { reservation_id: id },
      );
    }
    authorize(r.agentId);
    return r;
  }

  private budgets(r: Reservation, nowMs: number): BudgetView[] | undefined {
    return r.admitted.budgets?.statuses(nowMs).map(budgetView);
  }

  private view(r: Reservation, nowMs: number) {
    return {
      reservation_id: r.id,
      agent_id: r.agentId,
      model: r.model,
      status: r.state,
      held_micros: r.admitted.costMicros,
      expires_at: new Date(r.expiresMs).toISOString(),
      ...(r.admitted.unchecked === undefined ? {} : { budgets_unchecked: r.admitted.unchecked }),
      budgets: this.budgets(r, nowMs),
    };
  }
}

function closed(r: Reservation): HttpProblem {
  return new HttpProblem(
    'RESERVATION_CLOSED',
    r.state === 'expired'
      ? 'the reservation expired and its hold was refunded; post the usage to /v1/usage'
      : `the reservation is ${r.state}`,
    { reservation_id: r.id, state: r.state },
  );
}
