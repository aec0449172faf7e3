import type { Cost } from '@openclaw-edge/core';
import type { Limiter } from '@openclaw-edge/engine';
import {
  type AgentBudgets,
  type Crossing,
  type PriceBook,
  type Rating,
  rate,
  ruleFor,
  totalTokens,
  type Usage,
  windowAt,
} from '@openclaw-edge/rating';
import { HttpProblem } from '../http/problem.js';
import type { GroupCommitWriter, WriteResult } from '../ledger/group-commit.js';
import { LedgerUnavailableError } from '../ledger/group-commit.js';
import type { AppendOutcome, LedgerRow, LedgerStore } from '../ledger/ledger-store.js';
import type { BudgetCache, BudgetResolver } from './budget-book.js';
import { isItemError, parseUsageEvent, type UsageEvent } from './event.js';
import {
  type BudgetView,
  budgetView,
  encodeRating,
  type RatingView,
  ratingView,
  storedRatingView,
} from './views.js';

/** Everything the rating service is built from (picked by the composition root). */
export interface RatingDeps {
  readonly book: () => PriceBook | undefined;
  readonly budgets: BudgetCache;
  readonly resolveBudgets: () => BudgetResolver;
  readonly store: LedgerStore;
  readonly writer: GroupCommitWriter;
  readonly limiter: Limiter;
  /** True when config (or a runtime override) names the agent. */
  readonly isKnownAgent: (agentId: string) => boolean;
  readonly options: () => {
    readonly maxFutureMs: number;
    readonly unknownAgents: 'accept' | 'reject';
  };
}

/** Result of one usage event. */
export type ItemResult =
  | {
      readonly status: 'recorded' | 'duplicate';
      readonly event_id: string;
      readonly agent_id: string;
      readonly rating: RatingView;
      readonly budgets?: BudgetView[];
    }
  | {
      readonly status: 'rejected';
      readonly event_id?: string;
      readonly error: { code: string; detail: string; field?: string };
    };

/** Budgets of an agent for a decision, or why they could not be checked. */
export type BudgetCheck =
  | { readonly ok: true; readonly budgets: AgentBudgets | undefined }
  | { readonly ok: false; readonly failOpen: boolean; readonly reason: string };

/** Counters for metrics (see stats()). */
interface Counters {
  budgetDenials: number;
  budgetUnavailableDenied: number;
  budgetUnavailableAllowed: number;
  eventsRejected: number;
}

/**
 * Rating: prices usage, charges budgets, writes the ledger. The order that makes "exactly
 * once" hold: an event is written first (group commit), and its budget charge is applied in
 * memory only after its batch committed as a new row; a replay answers the stored rating and
 * charges nothing. Admission (rate, reservations) holds the cost in memory before writing, so
 * concurrent requests see each other, and gives it back when the write turns out a replay or fails.
 */
export class RatingService {
  private readonly volumes = new Map<string, number>();
  private readonly volumeLoads = new Map<string, Promise<number>>();
  private readonly crossings = new Map<string, number>();
  private readonly counters: Counters = {
    budgetDenials: 0,
    budgetUnavailableDenied: 0,
    budgetUnavailableAllowed: 0,
    eventsRejected: 0,
  };

  constructor(readonly deps: RatingDeps) {}

  /**
   * Records usage events (each on its own: one bad item does not fail the rest). A single
   * event's result carries its agent's budgets; a batch gives them once per agent instead.
   *
   * The events of one request go through together: each is validated and priced, the budgets
   * of their agents are loaded (one read for all missing ones), and the accepted rows are queued
   * for group commit with one promise for the request, not one chain of promises per event.
   */
  async recordUsage(
    items: readonly unknown[],
    authorize: (agentId: string) => void,
    nowMs: number,
  ): Promise<{ results: ItemResult[]; budgets?: Record<string, BudgetView[]> }> {
    const single = items.length === 1;
    const results: ItemResult[] = new Array(items.length);
    const accepted: Accepted[] = [];
    const pricing: Promise<void>[] = [];
    for (let i = 0; i < items.length; i++) {
      const raw = items[i];
      try {
        const event = this.acceptEvent(raw, single ? '' : `events[${i}].`, authorize, nowMs);
        const priced = this.priceSync(event.agentId, event.model, event.usage, event.timeMs);
        if (priced instanceof Promise) {
          // Tiered rules need the agent's month volume, read once from the ledger.
          const item: Accepted = { index: i, event, rating: undefined };
          accepted.push(item);
          pricing.push(
            priced.then(
              (rating) => {
                item.rating = rating;
              },
              (error: unknown) => {
                item.rating = undefined;
                results[i] = this.rejected(raw, error);
              },
            ),
          );
        } else accepted.push({ index: i, event, rating: priced });
      } catch (error) {
        results[i] = this.rejected(raw, error);
      }
    }
    if (pricing.length > 0) await Promise.all(pricing);
    const rows: LedgerRow[] = [];
    const written: Accepted[] = [];
    const loads: Promise<unknown>[] = [];
    for (const item of accepted) {
      if (item.rating === undefined) continue;
      // Load the agent's budgets before the write, so the commit charges them in memory and a
      // threshold this event crosses is counted (a load after the commit would only read the
      // new total from the ledger). Best effort: an unreadable ledger fails the write anyway.
      const agentId = item.event.agentId;
      if (
        this.deps.budgets.touch(agentId, nowMs) === undefined &&
        !this.deps.budgets.hasNone(agentId)
      ) {
        loads.push(this.deps.budgets.get(agentId, nowMs).catch(() => undefined));
      }
      rows.push(this.row(item.event, item.rating, nowMs));
      written.push(item);
    }
    if (loads.length > 0) await Promise.all(loads);
    const outcomes = await this.deps.writer.writeAll(rows);
    for (let k = 0; k < written.length; k++) {
      const { index, event, rating } = written[k] as Accepted & { rating: Rating };
      const outcome = outcomes[k] as WriteResult;
      if (outcome instanceof LedgerUnavailableError) {
        results[index] = this.rejected(items[index], unavailable(outcome));
        continue;
      }
      if (outcome.status === 'recorded') this.chargeCommitted(event, rating, nowMs);
      results[index] = {
        status: outcome.status,
        event_id: event.eventId,
        agent_id: event.agentId,
        rating: outcome.status === 'recorded' ? ratingView(rating) : storedRatingView(outcome.row),
      };
    }
    if (single) {
      const r = results[0];
      if (r !== undefined && r.status !== 'rejected') {
        const budgets = await this.budgetViews(r.agent_id, nowMs);
        if (budgets !== undefined) results[0] = { ...r, budgets };
      }
      return { results };
    }
    const budgets: Record<string, BudgetView[]> = {};
    for (const r of results) {
      if (r.status === 'rejected' || Object.hasOwn(budgets, r.agent_id)) continue;
      const views = await this.budgetViews(r.agent_id, nowMs);
      if (views !== undefined) budgets[r.agent_id] = views;
    }
    return { results, budgets };
  }

  /** Validates, authorizes and admits one event; throws a problem when it is refused. */
  private acceptEvent(
    raw: unknown,
    prefix: string,
    authorize: (agentId: string) => void,
    nowMs: number,
  ): UsageEvent {
    const parsed = parseUsageEvent(raw, prefix);
    if (isItemError(parsed))
      throw new HttpProblem('INVALID_EVENT', `${parsed.field}: ${parsed.detail}`, {
        field: parsed.field,
      });
    authorize(parsed.agentId);
    this.admitEvent(parsed, nowMs);
    return parsed;
  }

  /** The result of a refused item (counted), with its event id when it has one. */
  private rejected(raw: unknown, error: unknown): ItemResult {
    const eventId =
      raw !== null &&
      typeof raw === 'object' &&
      typeof (raw as { event_id?: unknown }).event_id === 'string'
        ? (raw as { event_id: string }).event_id
        : undefined;
    const problem = asProblem(error);
    this.counters.eventsRejected++;
    return {
      status: 'rejected',
      ...(eventId === undefined ? {} : { event_id: eventId }),
      error: {
        code: problem.code,
        detail: problem.message,
        ...(typeof problem.extensions.field === 'string'
          ? { field: problem.extensions.field }
          : {}),
      },
    };
  }

  /** Refuses events of unknown agents (when configured) and from the far future. */
  admitEvent(event: { agentId: string; timeMs: number }, nowMs: number): void {
    const opts = this.deps.options();
    if (opts.unknownAgents === 'reject' && !this.deps.isKnownAgent(event.agentId)) {
      throw new HttpProblem(
        'UNKNOWN_AGENT',
        'no agents rule names this agent; add one, or set usage.unknown_agents: accept',
        {
          agent_id: event.agentId,
        },
      );
    }
    if (event.timeMs > nowMs + opts.maxFutureMs) {
      throw new HttpProblem(
        'EVENT_IN_FUTURE',
        `time is more than ${opts.maxFutureMs} ms ahead of the server clock; send the time the usage happened`,
        { field: 'time' },
      );
    }
  }

  /** Prices usage at `timeMs` with the agent's month-to-date volume (for tiers). */
  async price(agentId: string, model: string, usage: Usage, timeMs: number): Promise<Rating> {
    return this.priceSync(agentId, model, usage, timeMs);
  }

  /**
   * Prices usage, synchronously unless the rule has volume tiers and the agent's month volume
   * is not in memory yet (then a promise). Throws a problem when nothing prices the model.
   */
  private priceSync(
    agentId: string,
    model: string,
    usage: Usage,
    timeMs: number,
  ): Rating | Promise<Rating> {
    const book = this.deps.book();
    if (book === undefined) {
      throw new HttpProblem('UNPRICED_MODEL', 'no pricing is configured; add a pricing section', {
        field: 'model',
      });
    }
    const found = ruleFor(book, model, timeMs);
    if (!('unpriced' in found) && found.rule.tiers.length > 0) {
      const key = volumeKey(agentId, found.rule.match, timeMs);
      const have = this.volumes.get(key);
      if (have === undefined) {
        return this.volumeOf(agentId, found.rule.match, timeMs).then((volume) =>
          priced(book, model, usage, timeMs, volume),
        );
      }
      return priced(book, model, usage, timeMs, have);
    }
    return priced(book, model, usage, timeMs, 0);
  }

  /** Writes one rated event through group commit. */
  async write(event: UsageEvent, rating: Rating, nowMs: number): Promise<AppendOutcome> {
    try {
      return await this.deps.writer.write(this.row(event, rating, nowMs));
    } catch (error) {
      if (error instanceof LedgerUnavailableError) throw unavailable(error);
      throw error;
    }
  }

  /** The ledger row of a rated event. */
  private row(event: UsageEvent, rating: Rating, nowMs: number): LedgerRow {
    const u = event.usage;
    return {
      eventId: event.eventId,
      agentId: event.agentId,
      timeMs: event.timeMs,
      model: event.model,
      rule: rating.rule,
      currency: rating.currency,
      inputTokens: u.inputTokens,
      cachedInputTokens: u.cachedInputTokens,
      cacheWriteTokens: u.cacheWriteTokens,
      outputTokens: u.outputTokens,
      reasoningTokens: u.reasoningTokens,
      requests: u.requests,
      totalTokens: totalTokens(u),
      costMicros: rating.costMicros,
      rating: encodeRating(rating),
      attributes: event.attributes,
      recordedMs: nowMs,
    };
  }

  /**
   * Applies a newly committed event to in-memory state: budgets and tier volume, where they are
   * loaded (otherwise their load, which runs after this commit, counts the event from the ledger).
   */
  chargeCommitted(event: UsageEvent, rating: Rating, nowMs: number): void {
    const budgets = this.deps.budgets.peek(event.agentId);
    if (budgets !== undefined) {
      this.countCrossings(budgets.charge(rating.costMicros, event.timeMs, nowMs, 'commit'));
    } else
      this.deps.budgets.committedUnloaded(event.agentId, rating.costMicros, event.timeMs, nowMs);
    const key = volumeKey(event.agentId, rating.rule, event.timeMs);
    const v = this.volumes.get(key);
    if (v !== undefined) this.volumes.set(key, v + totalTokens(event.usage));
  }

  /** Counts threshold crossings for metrics. */
  countCrossings(crossings: readonly Crossing[]): void {
    for (const c of crossings) {
      const key = `${c.budget}:${c.threshold}`;
      this.crossings.set(key, (this.crossings.get(key) ?? 0) + 1);
    }
  }

  /**
   * The agent's budgets for an admission decision. When they cannot be loaded, each budget's
   * `on_error` decides: any `deny` budget fails closed; otherwise the decision goes on unchecked
   * and says so.
   */
  async checkBudgets(agentId: string, nowMs: number): Promise<BudgetCheck> {
    if (this.deps.budgets.hasNone(agentId)) return { ok: true, budgets: undefined };
    try {
      return { ok: true, budgets: await this.deps.budgets.get(agentId, nowMs) };
    } catch (error) {
      const specs = this.deps.resolveBudgets()(agentId);
      const failOpen = specs.every((s) => s.onError === 'allow');
      if (failOpen) this.counters.budgetUnavailableAllowed++;
      else this.counters.budgetUnavailableDenied++;
      return { ok: false, failOpen, reason: (error as Error).message };
    }
  }

  /** Budgets after a decision, for responses; undefined when the agent has none or they cannot be read. */
  async budgetViews(agentId: string, nowMs: number): Promise<BudgetView[] | undefined> {
    if (this.deps.budgets.hasNone(agentId)) return undefined;
    try {
      const b = await this.deps.budgets.get(agentId, nowMs);
      return b.statuses(nowMs).map(budgetView);
    } catch {
      return undefined;
    }
  }

  /** Counts a budget denial. */
  countDenial(): void {
    this.counters.budgetDenials++;
  }

  /** Cost as the engine's rate limits see it: requests, tokens and money, by resource name. */
  limitCost(usage: Usage, costMicros: number): Cost {
    return {
      requests: usage.requests,
      tokens: totalTokens(usage),
      input_tokens: usage.inputTokens + usage.cachedInputTokens + usage.cacheWriteTokens,
      output_tokens: usage.outputTokens + usage.reasoningTokens,
      cost_micros: costMicros,
    };
  }

  /** Counters and gauges for metrics. */
  stats() {
    return {
      ...this.counters,
      /** Threshold crossings by `budget:threshold` (e.g. `daily:0.8`). */
      budgetThresholdCrossings: new Map(this.crossings),
      agentsWithBudgetsLoaded: this.deps.budgets.size,
    };
  }

  private volumeOf(agentId: string, rule: string, timeMs: number): Promise<number> {
    const key = volumeKey(agentId, rule, timeMs);
    const have = this.volumes.get(key);
    if (have !== undefined) return Promise.resolve(have);
    let pending = this.volumeLoads.get(key);
    if (pending === undefined) {
      const month = windowAt('month', 'UTC', timeMs);
      pending = this.deps.writer
        .read(
          () => this.deps.store.volume(agentId, rule, month.startMs, month.endMs),
          (v) => {
            this.volumes.set(key, v);
            this.volumeLoads.delete(key);
          },
        )
        .catch((error: unknown) => {
          this.volumeLoads.delete(key);
          throw new HttpProblem('LEDGER_UNAVAILABLE', `${(error as Error).message}; retry later`);
        });
      this.volumeLoads.set(key, pending);
    }
    return pending;
  }
}

/** An event accepted for writing; `rating` is unset until priced (or when pricing failed). */
interface Accepted {
  readonly index: number;
  readonly event: UsageEvent;
  rating: Rating | undefined;
}

function priced(book: PriceBook, model: string, usage: Usage, timeMs: number, volume: number) {
  const r = rate(book, model, usage, timeMs, volume);
  if ('unpriced' in r) throw new HttpProblem('UNPRICED_MODEL', r.reason, { field: 'model' });
  return r;
}

/** A failed write as the problem a client sees: nothing was stored, retry with the same id. */
function unavailable(error: LedgerUnavailableError): HttpProblem {
  return new HttpProblem(
    'LEDGER_UNAVAILABLE',
    `${error.message}; nothing was recorded, retry with the same event_id`,
  );
}

/** Key of an agent's volume under a rule in a UTC month (cheap: no time-zone lookup per event). */
function volumeKey(agentId: string, rule: string, timeMs: number): string {
  const d = new Date(timeMs);
  return `${agentId}\u0000${rule}\u0000${d.getUTCFullYear() * 12 + d.getUTCMonth()}`;
}

/** Any error as a problem with a code (unexpected ones become INTERNAL, never leaked). */
export function asProblem(error: unknown): HttpProblem {
  if (error instanceof HttpProblem) return error;
  if (error instanceof LedgerUnavailableError) {
    return new HttpProblem('LEDGER_UNAVAILABLE', `${error.message}; retry with the same event_id`);
  }
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && /^[A-Z_]+$/.test(code) && error instanceof Error) {
    return new HttpProblem('INVALID_REQUEST', error.message);
  }
  return new HttpProblem('INTERNAL', 'internal error while rating the event');
}
