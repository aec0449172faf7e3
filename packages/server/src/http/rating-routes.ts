import { windowAt } from '@openclaw-edge/rating';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { UsageTotals } from '../ledger/ledger-store.js';
import { type Admitted, admit, commit, release } from '../rating/admission.js';
import { isItemError, parseTime, parseUsageEvent } from '../rating/event.js';
import type { ReserveRequest } from '../rating/reservations.js';
import { type BudgetView, budgetView, ratingView, storedRatingView } from '../rating/views.js';
import { authorizeAgent } from './auth-hook.js';
import { HTTP_ERROR_CODES, HttpProblem, problem, sendProblem } from './problem.js';
import * as schemas from './rating-schemas.js';
import type { EdgeRuntime } from './runtime.js';
import { agentParams } from './schemas.js';
import { limitsView } from './views.js';

const DAY_MS = 86_400_000;
const MAX_RANGE_MS = 400 * DAY_MS;

/**
 * Rating routes: usage events, rating with admission, reserve/settle/cancel, usage totals.
 * All need the `check` scope and an API key allowed to act for the agent: the same principal
 * that spends an agent's limits spends and reads its money.
 */
export function registerRatingRoutes(
  app: FastifyInstance,
  runtime: EdgeRuntime,
  rating: NonNullable<EdgeRuntime['rating']>,
): void {
  const { service, reservations } = rating;
  const authorizer = (request: FastifyRequest) => (agentId: string) =>
    authorizeAgent(request, agentId);

  app.post(
    '/v1/usage',
    {
      config: { scope: 'check' },
      schema: {
        summary: `Record usage events (one, or up to ${runtime.maxBatch} as {"events": [...]}); answered once durable, per-item results.`,
        body: schemas.usageRequest(runtime.maxBatch),
      },
    },
    async (request, reply) => {
      const body = request.body as Record<string, unknown>;
      const batch = Array.isArray(body.events);
      const items = batch ? (body.events as unknown[]) : [body];
      const { results, budgets } = await service.recordUsage(
        items,
        authorizer(request),
        runtime.now(),
      );
      if (!batch) {
        const r = results[0];
        if (r?.status === 'rejected') {
          return sendProblem(
            reply,
            problem(statusOf(r.error.code), r.error.code, r.error.detail, {
              ...(r.event_id === undefined ? {} : { event_id: r.event_id }),
              ...(r.error.field === undefined ? {} : { field: r.error.field }),
            }),
          );
        }
        if (r?.budgets !== undefined) setBudgetHeader(reply, r.budgets);
        return r;
      }
      const count = (s: string) => results.filter((r) => r.status === s).length;
      return {
        recorded: count('recorded'),
        duplicate: count('duplicate'),
        rejected: count('rejected'),
        results,
        budgets,
      };
    },
  );

  app.post(
    '/v1/rate',
    {
      config: { scope: 'check' },
      schema: {
        summary:
          'Price a request and charge limits and budgets in one call (all or none), recorded in the ledger; dry_run only prices and checks.',
        body: schemas.rateRequest,
      },
    },
    async (request, reply) => {
      const body = request.body as Record<string, unknown> & { dry_run?: boolean };
      const now = runtime.now();
      const { dry_run: dryRun, ...fields } = body;
      if (!dryRun && fields.event_id === undefined) {
        throw new HttpProblem('INVALID_REQUEST', 'body.event_id: required unless dry_run', {
          field: 'body.event_id',
        });
      }
      const parsed = parseUsageEvent({
        event_id: 'dry-run',
        time: now,
        input_tokens: 0,
        output_tokens: 0,
        ...fields,
      });
      if (isItemError(parsed)) {
        throw new HttpProblem('INVALID_EVENT', `${parsed.field}: ${parsed.detail}`, {
          field: parsed.field,
        });
      }
      authorizeAgent(request, parsed.agentId);
      service.admitEvent(parsed, now);
      const priced = await service.price(parsed.agentId, parsed.model, parsed.usage, parsed.timeMs);
      const limitCost = service.limitCost(parsed.usage, priced.costMicros);
      if (dryRun) {
        const status = runtime.limiter.peek(parsed.agentId, now);
        const check = await service.checkBudgets(parsed.agentId, now);
        const budgets = check.ok ? check.budgets : undefined;
        const deniedBy = budgets?.deniedBy(priced.costMicros, now);
        const views = budgets?.statuses(now).map(budgetView);
        if (views !== undefined) setBudgetHeader(reply, views);
        return {
          agent_id: parsed.agentId,
          dry_run: true,
          allowed: deniedBy === undefined && (check.ok || check.failOpen),
          ...(deniedBy === undefined ? {} : { denied_by: deniedBy.name }),
          rating: ratingView(priced),
          limits: limitsView(status),
          ...(views === undefined ? {} : { budgets: views }),
        };
      }
      let admitted: Admitted;
      try {
        admitted = await admit(
          service,
          parsed.agentId,
          limitCost,
          priced.costMicros,
          parsed.timeMs,
          now,
        );
      } catch (error) {
        // A replay of a request recorded before the budget filled still gets its first answer.
        const stored = await replayOf(parsed.eventId).catch(() => undefined);
        if (stored !== undefined) return stored;
        throw error;
      }
      let outcome: Awaited<ReturnType<typeof service.write>>;
      try {
        outcome = await service.write(parsed, priced, now);
      } catch (error) {
        release(service, admitted, runtime.now());
        throw error;
      }
      if (outcome.status === 'duplicate') release(service, admitted, runtime.now());
      else commit(admitted, runtime.now());
      const views = admitted.budgets?.statuses(runtime.now()).map(budgetView);
      if (views !== undefined) setBudgetHeader(reply, views);
      return {
        agent_id: parsed.agentId,
        event_id: parsed.eventId,
        allowed: true,
        ledger: outcome.status,
        rating: storedRatingView(outcome.row),
        limits: limitsView(admitted.status),
        ...(views === undefined ? {} : { budgets: views }),
        ...(admitted.unchecked === undefined ? {} : { budgets_unchecked: admitted.unchecked }),
      };
    },
  );

  const replayOf = async (eventId: string) => {
    const [row] = await service.deps.store.get([eventId]);
    if (row === undefined) return undefined;
    return {
      agent_id: row.agentId,
      event_id: row.eventId,
      allowed: true,
      ledger: 'duplicate',
      rating: storedRatingView(row),
    };
  };

  app.post(
    '/v1/reservations',
    {
      config: { scope: 'check' },
      schema: {
        summary:
          'Hold an estimated cost across all limits and budgets of an agent (explicit, or from prompt size and max_tokens).',
        body: schemas.reserveRequest,
      },
    },
    async (request, reply) => {
      const body = request.body as ReserveRequest;
      authorizeAgent(request, body.agent_id);
      const { created, body: out } = await reservations.reserve(body, runtime.now());
      const budgets = out.budgets as BudgetView[] | undefined;
      if (budgets !== undefined) setBudgetHeader(reply, budgets);
      return reply.status(created ? 201 : 200).send(out);
    },
  );

  app.post(
    '/v1/reservations/:id/settle',
    {
      config: { scope: 'check' },
      schema: {
        summary:
          'Charge the actual usage of a reservation (the hold is swapped for it) and record it.',
        params: schemas.reservationParams,
        body: schemas.settleRequest,
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      const out = await reservations.settle(
        id,
        request.body as Record<string, unknown>,
        authorizer(request),
        runtime.now(),
      );
      const budgets = out.budgets as BudgetView[] | undefined;
      if (budgets !== undefined) setBudgetHeader(reply, budgets);
      return out;
    },
  );

  app.post(
    '/v1/reservations/:id/cancel',
    {
      config: { scope: 'check' },
      schema: {
        summary: 'Give a reservation back in full.',
        params: schemas.reservationParams,
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      return reservations.cancel(id, authorizer(request), runtime.now());
    },
  );

  app.get(
    '/v1/agents/:agent_id/usage',
    {
      config: { scope: 'check' },
      schema: {
        summary: "An agent's usage and cost totals in [from, to), grouped by model, hour or day.",
        params: agentParams,
        querystring: schemas.usageQuery,
      },
    },
    async (request) => {
      const { agent_id } = request.params as { agent_id: string };
      const q = request.query as {
        from?: string;
        to?: string;
        group_by?: 'model' | 'hour' | 'day';
      };
      authorizeAgent(request, agent_id);
      const to = q.to === undefined ? runtime.now() : queryTime(q.to, 'to');
      const from = q.from === undefined ? to - 30 * DAY_MS : queryTime(q.from, 'from');
      if (from >= to || to - from > MAX_RANGE_MS) {
        throw new HttpProblem(
          'INVALID_REQUEST',
          `querystring: need from < to, at most ${MAX_RANGE_MS / DAY_MS} days apart`,
          {
            field: 'querystring.from',
          },
        );
      }
      const groupBy = q.group_by ?? 'model';
      let rows: Awaited<ReturnType<typeof service.deps.store.usage>>;
      try {
        rows = await service.deps.store.usage(
          agent_id,
          from,
          to,
          groupBy === 'model' ? 'model' : 'hour',
        );
      } catch (error) {
        throw new HttpProblem(
          'LEDGER_UNAVAILABLE',
          `the ledger cannot be read: ${(error as Error).message}`,
        );
      }
      if (groupBy === 'day') rows = foldDays(rows, rating.timeZone());
      const currency = service.deps.book()?.currency;
      const groups = rows.map((r) => ({
        [groupBy === 'model' ? 'model' : 'start']:
          groupBy === 'model' ? r.key : new Date(r.key as number).toISOString(),
        events: r.events,
        requests: r.requests,
        input_tokens: r.inputTokens,
        cached_input_tokens: r.cachedInputTokens,
        cache_write_tokens: r.cacheWriteTokens,
        output_tokens: r.outputTokens,
        reasoning_tokens: r.reasoningTokens,
        cost_micros: r.costMicros,
      }));
      const total = groups.reduce((s, g) => s + (g.cost_micros as number), 0);
      return {
        agent_id,
        from: new Date(from).toISOString(),
        to: new Date(to).toISOString(),
        group_by: groupBy,
        ...(currency === undefined ? {} : { currency }),
        total_cost_micros: total,
        total_events: groups.reduce((s, g) => s + (g.events as number), 0),
        groups,
      };
    },
  );
}

function statusOf(code: string): number {
  return (HTTP_ERROR_CODES as Record<string, number>)[code] ?? 400;
}

function queryTime(text: string, field: string): number {
  const ms = /^\d{1,16}$/.test(text) ? Number(text) : parseTime(text);
  if (ms === undefined) {
    throw new HttpProblem('INVALID_REQUEST', `querystring.${field}: must be ISO 8601 or epoch ms`, {
      field: `querystring.${field}`,
    });
  }
  return ms;
}

/** Folds hourly totals into days of `timeZone` (exact for zones with whole-hour offsets). */
function foldDays(hours: readonly UsageTotals[], timeZone: string): UsageTotals[] {
  const days = new Map<number, UsageTotals>();
  for (const h of hours) {
    const start = windowAt('day', timeZone, h.key as number).startMs;
    const d = days.get(start);
    days.set(
      start,
      d === undefined
        ? { ...h, key: start }
        : {
            key: start,
            events: d.events + h.events,
            requests: d.requests + h.requests,
            inputTokens: d.inputTokens + h.inputTokens,
            cachedInputTokens: d.cachedInputTokens + h.cachedInputTokens,
            cacheWriteTokens: d.cacheWriteTokens + h.cacheWriteTokens,
            outputTokens: d.outputTokens + h.outputTokens,
            reasoningTokens: d.reasoningTokens + h.reasoningTokens,
            costMicros: d.costMicros + h.costMicros,
          },
    );
  }
  return [...days.values()].sort((a, b) => (a.key as number) - (b.key as number));
}

/**
 * Remaining budget as a header, in the style of RateLimit: each budget with its remaining
 * micro-units `r` (may be negative) and seconds to reset `t`.
 */
function setBudgetHeader(reply: FastifyReply, budgets: readonly BudgetView[]): void {
  if (budgets.length === 0) return;
  reply.header(
    'OpenClaw-Budget',
    budgets
      .map((b) => `"${b.name}";r=${b.remaining_micros};t=${Math.ceil(b.reset_ms / 1000)}`)
      .join(', '),
  );
}
