import { below, exponential, type Random, zipf } from './random.js';

/** What the clients send, before any replica sees it. */
export type WorkloadSpec =
  /** Poisson arrivals, every agent equally likely. */
  | { readonly kind: 'uniform'; readonly agents: number; readonly ratePerS: number }
  /** Poisson arrivals, agent of rank k with probability ∝ (k + 1)^-s. */
  | {
      readonly kind: 'zipf';
      readonly agents: number;
      readonly ratePerS: number;
      readonly s: number;
    }
  /**
   * Bursts: a Poisson process of bursts (agent Zipf-chosen), each `burstSize` requests spread
   * uniformly over `burstMs`: agents that sit idle (their bucket fills) and then fire at once.
   */
  | {
      readonly kind: 'bursty';
      readonly agents: number;
      readonly s: number;
      readonly burstsPerS: number;
      readonly burstSize: number;
      readonly burstMs: number;
    }
  /** Poisson arrivals; `hotShare` of them go to agent 0, the rest uniformly to the others. */
  | {
      readonly kind: 'hot';
      readonly agents: number;
      readonly ratePerS: number;
      readonly hotShare: number;
    };

/** Which replica a request lands on. */
export type Routing =
  /** A load balancer spreading requests uniformly over replicas. */
  | { readonly kind: 'random' }
  /**
   * `stickiness` of an agent's requests go to its home replica (agent mod R), the rest anywhere.
   * From `rehomeAtMs` on, the home is the next replica (agent + 1 mod R): a rebalance.
   */
  | { readonly kind: 'sticky'; readonly stickiness: number; readonly rehomeAtMs?: number };

/** Arrivals in time order, as parallel arrays (one entry per request, cost 1). */
export interface Arrivals {
  readonly count: number;
  /** Arrival time in ms (fractional). */
  readonly t: Float64Array;
  readonly agent: Int32Array;
  readonly replica: Int32Array;
}

export function generateArrivals(
  spec: WorkloadSpec,
  routing: Routing,
  replicas: number,
  durationMs: number,
  random: Random,
): Arrivals {
  const times: number[] = [];
  const agents: number[] = [];
  switch (spec.kind) {
    case 'uniform':
    case 'zipf':
    case 'hot': {
      const pick =
        spec.kind === 'zipf'
          ? zipf(random, spec.agents, spec.s)
          : spec.kind === 'uniform'
            ? () => below(random, spec.agents)
            : () =>
                random() < spec.hotShare ? 0 : 1 + below(random, Math.max(1, spec.agents - 1));
      const meanGapMs = 1000 / spec.ratePerS;
      for (let t = exponential(random, meanGapMs); t < durationMs; ) {
        times.push(t);
        agents.push(pick());
        t += exponential(random, meanGapMs);
      }
      break;
    }
    case 'bursty': {
      const pick = zipf(random, spec.agents, spec.s);
      const pending: { t: number; agent: number }[] = [];
      const meanGapMs = 1000 / spec.burstsPerS;
      for (let t = exponential(random, meanGapMs); t < durationMs; ) {
        const agent = pick();
        for (let i = 0; i < spec.burstSize; i++) {
          const at = t + random() * spec.burstMs;
          if (at < durationMs) pending.push({ t: at, agent });
        }
        t += exponential(random, meanGapMs);
      }
      pending.sort((a, b) => a.t - b.t);
      for (const p of pending) {
        times.push(p.t);
        agents.push(p.agent);
      }
      break;
    }
  }
  const count = times.length;
  const replica = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const agent = agents[i] as number;
    const moved =
      routing.kind === 'sticky' &&
      routing.rehomeAtMs !== undefined &&
      (times[i] as number) >= routing.rehomeAtMs;
    replica[i] =
      routing.kind === 'sticky' && random() < routing.stickiness
        ? (agent + (moved ? 1 : 0)) % replicas
        : below(random, replicas);
  }
  return { count, t: Float64Array.from(times), agent: Int32Array.from(agents), replica };
}
