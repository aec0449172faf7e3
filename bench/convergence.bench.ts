/**
 * Replication convergence on real processes (issue 4's `convergence_p99_ms`).
 *
 * R `openclaw-edge serve` processes replicate over the mesh on loopback (sync interval 100 ms by
 * default). A background load keeps 10,000 agents active: every agent is checked once a second,
 * spread over the replicas in batches every 100 ms, so every delta carries about a thousand
 * agents per replica. Meanwhile probes, one at a time: charge a fresh agent on one replica and
 * poll every other replica (every 2 ms) until it reports the charge. A probe's convergence time
 * runs from just before the charging request is sent to the first poll answer showing it on the
 * last replica, so it includes one HTTP round trip and up to 2 ms of polling on top of
 * replication itself.
 *
 *   npm run bench -- convergence [--replicas 3] [--probes 300] [--agents 10000] [--sync-ms 100]
 *                                [--anti-entropy-ms 2000] [--redis] [--write]
 *
 * --redis replicates through the local Redis (REDIS_URL) instead of the mesh, under a key prefix
 * of the run that is deleted at the end.
 *
 * --write (mesh only) merges `convergence_p99_ms` (and the setting it was measured at) into
 * bench/results/replication.json, next to the simulator's accuracy figures.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dropPrefix } from '../packages/server/test/redis.js';
import {
  type EdgeProcess,
  gitState,
  loadAverage,
  nodeCommand,
  percentile,
  progress,
  round,
  sleep,
  startEdgeProcess,
} from './support.js';

const SECRET = 'convergence-bench-secret';
const PROBE_COST = 100_000;

function option(args: readonly string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(args[i + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} needs a positive number`);
  return value;
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function post(url: string, path: string, body: unknown): Promise<number> {
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

async function charged(url: string, agentId: string): Promise<boolean> {
  const res = await fetch(`${url}/v1/agents/${agentId}`);
  const body = (await res.json()) as { limits: { remaining: number; capacity: number }[] };
  const limit = body.limits[0] as { remaining: number; capacity: number };
  return limit.remaining <= limit.capacity - PROBE_COST / 2;
}

export async function main(args: readonly string[]): Promise<void> {
  const replicas = option(args, 'replicas', 3);
  const probes = option(args, 'probes', 300);
  const agents = option(args, 'agents', 10_000);
  const syncMs = option(args, 'sync-ms', 100);
  // The service's default unless given.
  const antiEntropyMs = option(args, 'anti-entropy-ms', 2000);
  const transport = args.includes('--redis') ? 'redis' : 'mesh';
  // Redis: the local one (REDIS_URL), under a prefix of this run deleted at the end.
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const prefix = `convergence-bench-${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'openclaw-convergence-'));
  const ports = await Promise.all(Array.from({ length: replicas }, freePort));
  const peers = ports.map((p) => `"127.0.0.1:${p}"`).join(', ');
  progress(
    `starting ${replicas} replicas (${transport}, sync ${syncMs} ms), load average ${loadAverage().join(' ')}`,
  );
  const edges: EdgeProcess[] = await Promise.all(
    ports.map((port, i) => {
      const config = join(dir, `r${i}.yaml`);
      writeFileSync(
        config,
        `node_id: r${i}
data_dir: ${join(dir, `r${i}`)}
snapshot: { enabled: false }
server: { max_batch: 10000 }
limits:
  - { name: daily, capacity: 1000000, refill: 1000000, per: day }
replication:
  transport: ${transport}
  secret: ${SECRET}
  sync_interval_ms: ${syncMs}
  anti_entropy_interval_ms: ${antiEntropyMs}
  mesh: { port: ${port}, peers: [${peers}] }
  redis: { url: ${JSON.stringify(redisUrl)}, prefix: ${prefix} }
logging: { level: info }
`,
      );
      return startEdgeProcess(config, `r${i}`);
    }),
  );
  let stop = false;
  let loadChecks = 0;
  let loadErrors = 0;
  // Background: every agent once a second, in batches every 100 ms spread over the replicas.
  const perBatch = Math.ceil(agents / 10 / replicas);
  const background = (async () => {
    let next = 0;
    while (!stop) {
      const started = Date.now();
      await Promise.all(
        edges.map(async (edge) => {
          const checks = Array.from({ length: perBatch }, () => ({
            agent_id: `active-${next++ % agents}`,
          }));
          const status = await post(edge.url, '/v1/check/batch', { checks }).catch(() => 0);
          if (status === 200) loadChecks += checks.length;
          else loadErrors++;
        }),
      );
      await sleep(Math.max(0, 100 - (Date.now() - started)));
    }
  })();
  const times = new Float64Array(probes);
  /** How long the charging request itself took (part of each convergence time). */
  const chargeTimes = new Float64Array(probes);
  let loadRate = 0;
  try {
    progress('warming up 3 s (every active agent touched 3 times)');
    await sleep(3000);
    const loadStart = Date.now();
    const checksBefore = loadChecks;
    for (let p = 0; p < probes; p++) {
      const agent = `probe-${p}`;
      const source = edges[p % replicas] as EdgeProcess;
      const others = edges.filter((e) => e !== source);
      const t0 = performance.now();
      // A charge that takes hours to refill (the limit refills about 11.6 tokens a second).
      if ((await post(source.url, '/v1/check', { agent_id: agent, cost: PROBE_COST })) !== 200) {
        throw new Error('probe charge refused');
      }
      chargeTimes[p] = performance.now() - t0;
      await Promise.all(
        others.map(async (edge) => {
          const deadline = t0 + 10_000;
          while (!(await charged(edge.url, agent))) {
            if (performance.now() > deadline) throw new Error(`probe ${agent} never converged`);
            await sleep(2);
          }
        }),
      );
      times[p] = performance.now() - t0;
      if ((p + 1) % 50 === 0) progress(`  ${p + 1}/${probes} probes`);
      // Probes start at random phases of the sync interval.
      await sleep(Math.random() * syncMs);
    }
    loadRate = ((loadChecks - checksBefore) / (Date.now() - loadStart)) * 1000;
  } finally {
    stop = true;
    await background;
    await Promise.all(edges.map((e) => e.stop()));
    rmSync(dir, { recursive: true, force: true });
    if (transport === 'redis') await dropPrefix(redisUrl, prefix);
  }

  const sorted = times.slice().sort();
  const result = {
    transport,
    replicas,
    sync_interval_ms: syncMs,
    anti_entropy_interval_ms: antiEntropyMs,
    active_agents: agents,
    background_checks_per_s: Math.round(loadRate),
    background_errors: loadErrors,
    probes,
    convergence_p50_ms: round(percentile(sorted, 0.5), 1),
    convergence_p99_ms: round(percentile(sorted, 0.99), 1),
    convergence_max_ms: round(sorted[sorted.length - 1] as number, 1),
    charge_request_p50_ms: round(percentile(chargeTimes.slice().sort(), 0.5), 1),
    charge_request_p99_ms: round(percentile(chargeTimes.slice().sort(), 0.99), 1),
  };
  console.log(JSON.stringify(result, null, 2));
  const target = 2 * syncMs;
  console.log(
    `convergence p99 ${result.convergence_p99_ms} ms vs target ≤ ${target} ms (2 × sync interval): ${
      result.convergence_p99_ms <= target ? 'met' : 'missed'
    }`,
  );
  if (args.includes('--write') && transport === 'mesh') {
    const file = join(fileURLToPath(new URL('.', import.meta.url)), 'results', 'replication.json');
    const existing = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    const git = gitState();
    const merged = {
      ...existing,
      convergence: {
        date: new Date().toISOString(),
        command: nodeCommand(),
        git_commit: git.commit,
        code_modified_vs_commit: git.packagesDirty,
        load_average_end: loadAverage(),
        ...result,
      },
      convergence_p99_ms: result.convergence_p99_ms,
    };
    writeFileSync(file, `${JSON.stringify(merged, null, 2)}\n`);
    progress(`wrote ${file.slice(file.indexOf('bench'))}`);
  }
}
