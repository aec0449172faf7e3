/**
 * `npm run sim -- <scenario|all|list> [flags]`: runs replication scenarios in virtual time and
 * prints over-admission and utilisation per admission mode. docs/replication-sim.md.
 *
 * Flags override the scenario: --seed N, --replicas N, --sync-ms N, --delay-ms N,
 * --jitter-ms N, --loss P, --duration-s N, --share-floor F, --aligned / --unaligned; --json prints JSON instead of a
 * table; --timeline adds agent 0's admissions per second per mode; --write stores the target scenario's numbers in bench/results/replication.json.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCENARIOS, scenarioNamed } from './scenarios.js';
import { runScenario, type ScenarioSpec, type SimResult } from './simulate.js';

const TARGET = 'skewed-5x100ms';
const NUMERIC_FLAGS = [
  '--seed',
  '--replicas',
  '--sync-ms',
  '--delay-ms',
  '--jitter-ms',
  '--loss',
  '--duration-s',
  '--share-floor',
] as const;

function usage(): string {
  return [
    'Usage: npm run sim -- <scenario|all|list> [--seed N] [--replicas N] [--sync-ms N]',
    '       [--delay-ms N] [--jitter-ms N] [--loss P] [--duration-s N] [--share-floor F]',
    '       [--aligned|--unaligned] [--timeline] [--json] [--write]',
    `Scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}`,
  ].join('\n');
}

function applyFlags(spec: ScenarioSpec, flags: Map<string, number>): ScenarioSpec {
  const get = (k: string) => flags.get(k);
  const network = {
    ...spec.network,
    ...(get('--sync-ms') === undefined ? {} : { syncMs: get('--sync-ms') as number }),
    ...(get('--delay-ms') === undefined ? {} : { delayMs: get('--delay-ms') as number }),
    ...(get('--jitter-ms') === undefined ? {} : { jitterMs: get('--jitter-ms') as number }),
    ...(get('--loss') === undefined ? {} : { loss: get('--loss') as number }),
    ...(get('--aligned') === undefined ? {} : { alignedTicks: get('--aligned') === 1 }),
    ...(get('--unaligned') === undefined ? {} : { alignedTicks: false }),
  };
  return {
    ...spec,
    network,
    ...(get('--seed') === undefined ? {} : { seed: get('--seed') as number }),
    ...(get('--replicas') === undefined ? {} : { replicas: get('--replicas') as number }),
    ...(get('--duration-s') === undefined
      ? {}
      : { durationMs: (get('--duration-s') as number) * 1000 }),
    ...(get('--share-floor') === undefined ? {} : { shareFloor: get('--share-floor') as number }),
  };
}

const fmt = (x: number, digits = 2): string => (Number.isFinite(x) ? x.toFixed(digits) : '-');

export function table(results: readonly SimResult[]): string {
  const header =
    '| scenario | mode | admitted | over-admission % | utilisation % | burst excess % | sync lag p99 ms |';
  const rows = results.flatMap((r) =>
    r.modes.map(
      (m) =>
        `| ${r.scenario.name} | ${m.mode} | ${m.admitted} | ${fmt(m.overAdmissionPct)} | ${fmt(m.utilisationPct)} | ${fmt(m.burstExcessPct)} | ${m.mode === 'exact' ? '-' : fmt(m.syncLagP99Ms, 0)} |`,
    ),
  );
  return [header, '| --- | --- | ---: | ---: | ---: | ---: | ---: |', ...rows].join('\n');
}

/** Agent 0's admissions per second, one column per mode. */
export function timelineOf(r: SimResult): string {
  const header = `| ${r.scenario.name}: second | ${r.modes.map((m) => m.mode).join(' | ')} |`;
  const rows = (r.modes[0]?.agent0PerSecond ?? []).map(
    (_, s) => `| ${s} | ${r.modes.map((m) => m.agent0PerSecond[s] ?? 0).join(' | ')} |`,
  );
  return [header, `| ---: |${r.modes.map(() => ' ---: |').join('')}`, ...rows].join('\n');
}

function main(argv: readonly string[]): number {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === 'list') {
    for (const s of SCENARIOS) console.log(`${s.name.padEnd(20)} ${s.description}`);
    return 0;
  }
  const flags = new Map<string, number>();
  let json = false;
  let write = false;
  let timeline = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] as string;
    if (arg === '--json') json = true;
    else if (arg === '--aligned') flags.set(arg, 1);
    else if (arg === '--unaligned') flags.set(arg, 0);
    else if (arg === '--write') write = true;
    else if (arg === '--timeline') timeline = true;
    else if ((NUMERIC_FLAGS as readonly string[]).includes(arg) && i + 1 < rest.length) {
      const value = Number(rest[++i]);
      if (!Number.isFinite(value)) {
        console.error(`sim: ${arg} needs a number\n${usage()}`);
        return 2;
      }
      flags.set(arg, value);
    } else {
      console.error(`sim: unexpected argument "${arg}"\n${usage()}`);
      return 2;
    }
  }
  const specs = name === 'all' ? SCENARIOS : [scenarioNamed(name)];
  if (specs[0] === undefined) {
    console.error(`sim: unknown scenario "${name}"\n${usage()}`);
    return 2;
  }
  const results: SimResult[] = [];
  for (const base of specs as ScenarioSpec[]) {
    const spec = applyFlags(base, flags);
    const started = performance.now();
    const result = runScenario(spec);
    results.push(result);
    if (!json) {
      console.error(
        `${spec.name}: ${result.arrivals} arrivals, ${result.agentsSeen} agents, seed ${spec.seed}, ${fmt((performance.now() - started) / 1000, 1)} s`,
      );
    }
  }
  if (json) console.log(JSON.stringify(results, null, 2));
  else console.log(table(results));
  if (timeline && !json) for (const r of results) console.log(`\n${timelineOf(r)}`);
  if (write) {
    const target = results.find((r) => r.scenario.name === TARGET);
    if (target === undefined || flags.size > 0) {
      console.error(`sim: --write needs the ${TARGET} scenario without overriding flags`);
      return 2;
    }
    writeResults(target);
  }
  return 0;
}

function git(args: readonly string[]): string {
  try {
    return execFileSync('git', args, { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** The convergence measurement of real processes already in the file (its own benchmark). */
function keptConvergence(file: string): Record<string, unknown> {
  try {
    const old = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    return old.convergence === undefined
      ? {}
      : { convergence_p99_ms: old.convergence_p99_ms, convergence: old.convergence };
  } catch {
    return {};
  }
}

function writeResults(r: SimResult): void {
  const mode = (m: string) => r.modes.find((x) => x.mode === m);
  const shared = mode('shared');
  const optimistic = mode('optimistic');
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const file = join(root, 'bench', 'results', 'replication.json');
  mkdirSync(dirname(file), { recursive: true });
  const round = (x: number | undefined) => (x === undefined ? null : Math.round(x * 1000) / 1000);
  const out = {
    benchmark: 'replication',
    date: new Date().toISOString(),
    command: `npm run sim -- ${TARGET} --write`,
    git_commit: git(['rev-parse', '--short=12', 'HEAD']),
    code_modified_vs_commit: git(['status', '--porcelain', 'packages', 'sim']) !== '',
    scenario: TARGET,
    seed: r.scenario.seed,
    replicas: r.scenario.replicas,
    sync_interval_ms: r.scenario.network.syncMs,
    arrivals: r.arrivals,
    exact_admitted: mode('exact')?.admitted ?? null,
    shared_over_admission_pct: round(shared?.overAdmissionPct),
    shared_utilisation_pct: round(shared?.utilisationPct),
    shared_burst_excess_pct: round(shared?.burstExcessPct),
    optimistic_over_admission_pct: round(optimistic?.overAdmissionPct),
    optimistic_utilisation_pct: round(optimistic?.utilisationPct),
    optimistic_burst_excess_pct: round(optimistic?.burstExcessPct),
    note: 'Accuracy fields: simulated (virtual time, in-process replicas, docs/replication-sim.md). convergence_p99_ms and `convergence`: real processes, `npm run bench -- convergence --write` (kept when the simulator rewrites this file).',
    ...keptConvergence(file),
  };
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  console.error(`wrote ${file}`);
}

process.exitCode = main(process.argv.slice(2));
