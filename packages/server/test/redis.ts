import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

/** The Redis the tests share: REDIS_URL, or the local default. Tests never stop it. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * Whether the shared Redis answers. Under CI=true a missing Redis is an error (the suite must not
 * pass by skipping); elsewhere the suite is skipped with the reason printed.
 */
export async function redisAvailable(): Promise<boolean> {
  const client = new Redis(REDIS_URL, {
    lazyConnect: true,
    connectTimeout: 2000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.ping();
    return true;
  } catch (error) {
    const reason = `Redis at ${REDIS_URL} is unreachable (${(error as Error).message})`;
    if (process.env.CI === 'true') throw new Error(`${reason}; CI needs it`);
    console.warn(`skipping Redis tests: ${reason}`);
    return false;
  } finally {
    client.disconnect();
  }
}

/** A key prefix unique to one test, so parallel tests never share keys or channels. */
export function uniquePrefix(label: string): string {
  return `t-${label}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Deletes every key under a prefix. */
export async function dropPrefix(url: string, prefix: string): Promise<void> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await client.del(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as import('node:net').AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * A redis-server of the test's own, on a free port, without persistence: a test may stop and
 * restart it (it comes back empty) without touching the shared one.
 */
export class OwnRedis {
  private child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly extraArgs: readonly string[],
  ) {}

  static async start(extraArgs: readonly string[] = []): Promise<OwnRedis> {
    const r = new OwnRedis(await freePort(), extraArgs);
    await r.restart();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts the server (again) on the same port and waits until it answers. */
  async restart(): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        ...['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        ...this.extraArgs,
      ],
      { stdio: 'ignore' },
    );
    this.child = child;
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode})`);
      const probe = new Redis(this.url, {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      probe.on('error', () => {});
      try {
        await probe.connect();
        if ((await probe.ping()) === 'PONG') return;
      } catch {
        if (Date.now() > deadline) throw new Error('redis-server did not start');
        await new Promise((r) => setTimeout(r, 50));
      } finally {
        probe.disconnect();
      }
    }
  }

  /** Stops the server and waits for the process to exit. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }
}

/**
 * A Redis Cluster of the test's own: `size` masters on free ports (no replicas), the 16,384
 * slots split evenly between them, for the transport's cluster mode.
 */
export class OwnRedisCluster {
  private constructor(
    readonly nodes: readonly OwnRedis[],
    private readonly dir: string,
  ) {}

  static async start(size = 3): Promise<OwnRedisCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'openclaw-edge-cluster-'));
    const nodes: OwnRedis[] = [];
    const busPorts: number[] = [];
    for (let i = 0; i < size; i++) {
      busPorts.push(await freePort());
      nodes.push(
        await OwnRedis.start([
          ...['--cluster-enabled', 'yes', '--dir', dir],
          ...['--cluster-config-file', `nodes-${i}.conf`],
          // The bus port would be port + 10000 by default, past 65535 for high ports.
          ...['--cluster-port', String(busPorts[i])],
        ]),
      );
    }
    const cluster = new OwnRedisCluster(nodes, dir);
    const clients = nodes.map((n) => new Redis(n.url, { maxRetriesPerRequest: 1 }));
    try {
      const per = Math.ceil(16_384 / size);
      for (const [i, client] of clients.entries()) {
        const last = Math.min(16_383, (i + 1) * per - 1);
        await client.call('CLUSTER', 'ADDSLOTSRANGE', String(i * per), String(last));
      }
      for (let i = 1; i < size; i++) {
        const [port, bus] = [(nodes[i] as OwnRedis).port, busPorts[i] as number];
        await clients[0]?.call('CLUSTER', 'MEET', '127.0.0.1', String(port), String(bus));
      }
      const deadline = Date.now() + 20_000;
      for (;;) {
        const infos = await Promise.all(clients.map((c) => c.call('CLUSTER', 'INFO')));
        const ok = infos.every(
          (info) =>
            String(info).includes('cluster_state:ok') &&
            String(info).includes(`cluster_known_nodes:${size}`),
        );
        if (ok) return cluster;
        if (Date.now() > deadline) throw new Error('the test cluster did not form');
        await new Promise((r) => setTimeout(r, 100));
      }
    } catch (error) {
      await cluster.stop();
      throw error;
    } finally {
      for (const c of clients) c.disconnect();
    }
  }

  /** A seed node's URL (the client discovers the others). */
  get url(): string {
    return (this.nodes[0] as OwnRedis).url;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
