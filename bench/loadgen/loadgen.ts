/**
 * The load generator (`loadgen.c`, beside this file: an open loop at a rate, or a closed loop)
 * from TypeScript: compiled with the system C compiler on first use, run as a child process, its
 * JSON line parsed. The http bench measures latency at 80% load and each contender's peak with
 * it; `bench/test/loadgen.test.ts` holds it to its contract against real servers.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pinToCpu, procCpuS } from '../support.js';

const SOURCE = fileURLToPath(new URL('loadgen.c', import.meta.url));

/** Milliseconds. */
export interface LatencySummary {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

/** loadgen's JSON line (counts are of the measured requests; the warm-up is left out). */
export interface LoadgenResult {
  readonly rate: number;
  /** `closed` at rate 0: each connection sends on the answer to its last request. */
  readonly arrivals: 'uniform' | 'poisson' | 'closed';
  readonly connections: number;
  readonly warmup_s: number;
  readonly duration_s: number;
  /** Requests due in the measured window (rate × duration). */
  readonly scheduled: number;
  readonly completed: number;
  /** Measured responses ÷ (last response − first measured due time). */
  readonly achieved_rps: number;
  readonly non2xx: number;
  /** Requests lost to a broken connection or an unparsable response. */
  readonly errors: number;
  /** Requests still unanswered when the timeout after the last due time ran out. */
  readonly unfinished: number;
  readonly unsent: number;
  readonly reconnects: number;
  /** From the time each request was due: what a client sending at the rate waits. */
  readonly latency_ms: LatencySummary;
  /** From the time each request was written. */
  readonly service_ms: LatencySummary;
  /** How late each request was written (no free connection, or the generator itself). */
  readonly send_lag_ms: LatencySummary;
  readonly statuses: Readonly<Record<string, number>>;
}

export interface LoadgenOptions {
  /** `http://IPV4:PORT/PATH`. */
  readonly url: string;
  /** Requests per second; 0 runs a closed loop (each connection sends on its last answer). */
  readonly rate: number;
  readonly durationS: number;
  readonly warmupS?: number;
  readonly connections?: number;
  /** JSON bodies sent in turn as POSTs; without, GETs. */
  readonly bodies?: readonly (string | Buffer)[];
  readonly arrivals?: 'uniform' | 'poisson';
  readonly seed?: number;
  readonly timeoutS?: number;
  /** Pin loadgen to this CPU (taskset) once started. */
  readonly cpu?: number;
}

/**
 * Compiles loadgen into `dir` and returns the binary's path, or undefined when there is no C
 * compiler (`cc`; Debian package gcc). A failed compile throws with the compiler's output.
 */
export function buildLoadgen(dir: string): string | undefined {
  if (spawnSync('cc', ['--version'], { stdio: 'ignore' }).error !== undefined) return undefined;
  const binary = join(dir, 'loadgen');
  const cc = spawnSync('cc', ['-O2', '-Wall', '-o', binary, SOURCE, '-lm'], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`compiling loadgen failed: ${cc.stderr}`);
  return binary;
}

/** The command-line arguments for `options` (bodies go to a file in `dir`). */
export function loadgenArgs(options: LoadgenOptions, dir: string): string[] {
  const args = ['--url', options.url, '--rate', String(options.rate)];
  args.push('--duration', String(options.durationS), '--warmup', String(options.warmupS ?? 0));
  args.push('--connections', String(options.connections ?? 64), '--quiet');
  if (options.arrivals !== undefined) args.push('--arrivals', options.arrivals);
  if (options.seed !== undefined) args.push('--seed', String(options.seed));
  if (options.timeoutS !== undefined) args.push('--timeout', String(options.timeoutS));
  if (options.bodies !== undefined) {
    const file = join(dir, 'loadgen-bodies.txt');
    writeFileSync(file, `${options.bodies.map((b) => b.toString()).join('\n')}\n`);
    args.push('--bodies', file);
  }
  return args;
}

/** Runs loadgen to the end; also returns the CPU seconds it used (sampled every 250 ms). */
export async function runLoadgen(
  binary: string,
  options: LoadgenOptions,
  dir: string,
): Promise<{ result: LoadgenResult; cpuS: number }> {
  const child = spawn(binary, loadgenArgs(options, dir), { stdio: ['ignore', 'pipe', 'pipe'] });
  if (options.cpu !== undefined && child.pid !== undefined) pinToCpu(child.pid, options.cpu);
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk: Buffer) => {
    err += chunk.toString('utf8');
  });
  let cpuS = 0;
  const sampler = setInterval(() => {
    const s = child.pid === undefined ? Number.NaN : procCpuS(child.pid);
    if (!Number.isNaN(s)) cpuS = s;
  }, 250);
  // 'close', not 'exit': the JSON line may still be in the pipe when the process exits.
  const [code] = (await once(child, 'close')) as [number | null];
  clearInterval(sampler);
  if (code !== 0) throw new Error(`loadgen exited with ${code}: ${err.trim()}`);
  return { result: JSON.parse(out) as LoadgenResult, cpuS };
}
