import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Limiter } from '@openclaw-edge/engine';
import { ApiKeys, type EdgeRuntime } from '@openclaw-edge/server';

const root = join(import.meta.dirname, '..', '..', '..');
const entry = join(root, 'packages', 'server', 'src', 'main.ts');

/** Node arguments that run the CLI from TypeScript sources, as `npm start` does. */
export const CLI = ['--conditions=@openclaw-edge/source', '--import', 'tsx', entry];

/** A scratch directory removed by `cleanup`. */
export function scratchDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'openclaw-edge-test-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A real `openclaw-edge serve` process on a free loopback port. */
export interface Edge {
  readonly url: string;
  readonly proc: ChildProcess;
  /** Every JSON log line so far. */
  readonly logs: Record<string, unknown>[];
  /** Sends a signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Resolves when a log line matching `test` appears (bounded wait). */
  waitForLog(
    test: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
}

/** Starts the service with `configPath` (or none) and resolves once it logs "ready". */
export async function startEdge(options: {
  configPath?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  /** CLI command and its flags; default `serve`. */
  command?: readonly string[];
}): Promise<Edge> {
  const args = [
    ...CLI,
    ...(options.command ?? ['serve']),
    ...(options.configPath ? ['--config', options.configPath] : []),
  ];
  const proc = spawn(process.execPath, args, {
    cwd: root,
    env: {
      ...process.env,
      PORT: '0',
      LOG_LEVEL: 'info',
      OPENCLAW_EDGE_LOG_FORMAT: 'json',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const waiters: {
    test: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];
  let stderr = '';
  let buffered = '';
  proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf('\n');
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        logs.push(parsed);
        for (const w of [...waiters]) {
          if (w.test(parsed)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(parsed);
          }
        }
      } catch {
        // not a log line
      }
    }
  });
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) =>
    proc.once('exit', (code) => resolve(code)),
  );
  const waitForLog = (test: (l: Record<string, unknown>) => boolean, timeoutMs = 15_000) => {
    const seen = logs.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `no matching log line within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`,
            ),
          ),
        timeoutMs,
      );
      waiters.push({
        test,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(
          new Error(
            `server exited with ${code} before the log line; stderr: ${stderr.slice(-2000)}`,
          ),
        );
      });
    });
  };
  const ready = await waitForLog((l) => l.msg === 'ready', options.timeoutMs ?? 20_000);
  return {
    url: String(ready.address),
    proc,
    logs,
    waitForLog,
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/**
 * The `replication:` section of a config for a real process in a mesh of loopback replicas: fast
 * ticks (deltas every 50 ms, anti-entropy every 500 ms) and a start-up sync of at most 3 s.
 */
export function meshReplication(meshPort: number, peers: readonly string[]): string {
  return `replication:
  transport: mesh
  secret: test-fleet-secret-0123456789
  sync_interval_ms: 50
  anti_entropy_interval_ms: 500
  startup_sync_ms: 3000
  mesh:
    port: ${meshPort}
    timeout_ms: 500
    peers: [${peers.map((p) => `"${p}"`).join(', ')}]`;
}

/** Writes a config file into `dir` and returns its path. */
export function writeConfig(dir: string, yaml: string, name = 'edge.yaml'): string {
  const path = join(dir, name);
  writeFileSync(path, yaml);
  return path;
}

/** JSON request helper: returns status, headers and parsed body. */
export async function call(
  url: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
  }
  const res = await fetch(`${url}${path}`, init);
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    parsed = { raw: text };
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** Polls `probe` until it returns true or the deadline passes. */
export async function eventually(
  probe: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `n` distinct loopback ports that were free a moment ago (for listeners a child process opens). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Server>((resolve) => {
          const s = createServer();
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/**
 * An EdgeRuntime for apps built in process (`buildApp` + `inject`): no API keys, always ready,
 * no tiers, no replication; `over` replaces any part.
 */
export function edgeRuntime(limiter: Limiter, over: Partial<EdgeRuntime> = {}): EdgeRuntime {
  return {
    limiter,
    now: () => 0,
    apiKeys: () => new ApiKeys([]),
    tiers: () => new Map(),
    isReady: () => true,
    overrideChanged: () => {},
    replication: () => undefined,
    maxBatch: 10,
    bodyLimitBytes: 4096,
    ...over,
  };
}
