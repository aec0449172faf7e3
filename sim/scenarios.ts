import type { NetworkSpec, ScenarioSpec } from './simulate.js';

/** 100 ms sync, 5 ms ± 5 ms one-way delay, no loss, anti-entropy every second. */
const NET_100MS: NetworkSpec = {
  syncMs: 100,
  delayMs: 5,
  jitterMs: 5,
  loss: 0,
  antiEntropyMs: 1_000,
  partitions: [],
};

/** The core bench's limit: 100 requests of burst, 50 per second. */
const LIMIT = { capacity: 100, refillPerS: 50 } as const;

const BASE = {
  replicas: 5,
  durationMs: 30_000,
  routing: { kind: 'random' },
  limit: LIMIT,
  network: NET_100MS,
  seed: 0x5eed,
} as const;

/** 1,000 agents, Zipf s = 1.1, 2,000 requests/s in all: the few hottest agents run over their limit. */
const SKEWED = { kind: 'zipf', agents: 1_000, ratePerS: 2_000, s: 1.1 } as const;

/** Every named scenario; `skewed-5x100ms` is the target of issue 4. */
export const SCENARIOS: readonly ScenarioSpec[] = [
  {
    ...BASE,
    name: 'skewed-5x100ms',
    description:
      '5 replicas, 100 ms sync, Zipf(1.1) over 1,000 agents at 2,000 req/s (issue 4 target)',
    workload: SKEWED,
  },
  {
    ...BASE,
    name: 'uniform-5x100ms',
    description:
      '5 replicas, 100 ms sync, 1,000 agents equally likely at 2,000 req/s (no agent over its limit)',
    workload: { kind: 'uniform', agents: 1_000, ratePerS: 2_000 },
  },
  {
    ...BASE,
    name: 'hot-agent-5x100ms',
    description: '5 replicas, 100 ms sync, one agent takes half of 2,000 req/s (20x its limit)',
    workload: { kind: 'hot', agents: 1_000, ratePerS: 2_000, hotShare: 0.5 },
  },
  {
    ...BASE,
    name: 'bursty-5x100ms',
    description:
      '5 replicas, 100 ms sync, bursts of 150 requests within 200 ms, 20 bursts/s over 200 Zipf-chosen agents',
    workload: { kind: 'bursty', agents: 200, s: 1.1, burstsPerS: 20, burstSize: 150, burstMs: 200 },
  },
  {
    ...BASE,
    name: 'bursty-aligned-5x100ms',
    description: 'bursty, with every replica ticking on the same 100 ms grid (synchronised clocks)',
    workload: { kind: 'bursty', agents: 200, s: 1.1, burstsPerS: 20, burstSize: 150, burstMs: 200 },
    network: { ...NET_100MS, alignedTicks: true },
  },
  {
    ...BASE,
    name: 'sticky-5x100ms',
    description: "skewed, but 90% of an agent's requests land on its home replica (sticky routing)",
    workload: SKEWED,
    routing: { kind: 'sticky', stickiness: 0.9 },
  },
  {
    ...BASE,
    name: 'rehome-5x100ms',
    description:
      'sticky (90%), and at 15 s every agent moves to another home replica (a rebalance)',
    workload: SKEWED,
    routing: { kind: 'sticky', stickiness: 0.9, rehomeAtMs: 15_000 },
  },
  {
    ...BASE,
    name: 'lossy-5x100ms',
    description:
      'skewed, 10% message loss, 20 ms ± 30 ms delay (sync points wait for anti-entropy)',
    workload: SKEWED,
    network: { ...NET_100MS, loss: 0.1, delayMs: 20, jitterMs: 30 },
  },
  {
    ...BASE,
    name: 'partition-5x100ms',
    description: 'hot agent; replicas {0,1} and {2,3,4} cut apart from 10 s to 20 s',
    workload: { kind: 'hot', agents: 1_000, ratePerS: 2_000, hotShare: 0.5 },
    network: {
      ...NET_100MS,
      partitions: [
        {
          groups: [
            [0, 1],
            [2, 3, 4],
          ],
          startMs: 10_000,
          healMs: 20_000,
        },
      ],
    },
  },
  {
    ...BASE,
    name: 'skewed-10x100ms',
    description: '10 replicas, 100 ms sync, the skewed workload',
    replicas: 10,
    workload: SKEWED,
  },
  {
    ...BASE,
    name: 'skewed-5x500ms',
    description: '5 replicas, 500 ms sync (5 s anti-entropy), the skewed workload',
    workload: SKEWED,
    network: { ...NET_100MS, syncMs: 500, antiEntropyMs: 5_000 },
  },
];

export function scenarioNamed(name: string): ScenarioSpec | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
