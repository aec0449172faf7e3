import {
  availableTokens,
  type BucketState,
  createBucket,
  definePolicy,
  refund,
  tryConsumeAll,
} from '@openclaw-edge/core';
import { Limiter } from '@openclaw-edge/engine';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

// The engine packs buckets into typed arrays; the core keeps them as plain states. Both must
// make the same decisions and report the same tokens on any sequence of operations.
const policy = definePolicy([
  { name: 'requests', capacity: 5, refill: 2, per: 'second' },
  { name: 'tokens', resource: 'tokens', capacity: 400, refill: 100, per: 'second' },
]);

const op = fc.oneof(
  fc.record({
    kind: fc.constant('check' as const),
    agent: fc.integer({ min: 0, max: 2 }),
    tokens: fc.integer({ min: 0, max: 500 }),
  }),
  fc.record({
    kind: fc.constant('refund' as const),
    agent: fc.integer({ min: 0, max: 2 }),
    tokens: fc.integer({ min: 0, max: 300 }),
  }),
  fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 3_000 }) }),
);

describe('engine against the core model', () => {
  it('makes the same decisions and reports the same tokens', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const engine = new Limiter({ nodeId: 'n', incarnation: 1, defaultPolicy: policy });
        const model = new Map<number, BucketState[]>();
        let now = 1_000;
        const stateOf = (agent: number) => {
          let s = model.get(agent);
          if (s === undefined) {
            s = policy.limits.map((limit) => createBucket(limit, now));
            model.set(agent, s);
          }
          return s;
        };
        for (const o of ops) {
          if (o.kind === 'wait') {
            now += o.ms;
            continue;
          }
          const id = `agent-${o.agent}`;
          const cost = { requests: 1, tokens: o.tokens };
          if (o.kind === 'check') {
            const decision = engine.check(id, cost, now);
            const expected = tryConsumeAll(stateOf(o.agent), policy.limits, 'n', cost, now);
            expect(decision.allowed).toBe(expected.allowed);
            if (expected.allowed) model.set(o.agent, [...expected.states]);
            else expect(decision.retryAfterMs).toBe(expected.retryAfterMs);
          } else {
            const credited = engine.refund(id, cost, now).map((r) => r.refunded);
            if (model.has(o.agent)) {
              const next = stateOf(o.agent).map((s, i) =>
                refund(s, policy.limits[i]!, 'n', i === 0 ? 1 : o.tokens, now),
              );
              expect(credited).toEqual(next.map((r) => r.refunded));
              model.set(
                o.agent,
                next.map((r) => r.state),
              );
            } else {
              expect(credited).toEqual([0, 0]);
            }
          }
          for (const [agent, states] of model) {
            const reported = engine.peek(`agent-${agent}`, now).limits.map((l) => l.remaining);
            states.forEach((s, i) => {
              expect(reported[i]).toBeCloseTo(availableTokens(s, policy.limits[i]!, now), 6);
            });
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
