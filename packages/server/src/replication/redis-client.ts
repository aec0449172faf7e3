import { Cluster, Redis, type RedisOptions } from 'ioredis';

/**
 * The Redis the transport talks to: one server (`Redis`), or a Redis Cluster (`Cluster`), where
 * each agent's key lives on the master that owns its hash slot. The few places where the two
 * differ are here: batching across keys, SCAN, and telling that a server restarted.
 */
export type RedisClient = Redis | Cluster;

/** Connection settings shared by the command and the subscriber connection. */
export interface ClientOptions {
  readonly url: string;
  readonly cluster: boolean;
  readonly redis: RedisOptions;
  /** Cluster only: queue commands while the cluster is not ready (the subscriber does). */
  readonly offlineQueue: boolean;
}

export function createClient(o: ClientOptions): RedisClient {
  if (!o.cluster) return new Redis(o.url, { ...o.redis, enableOfflineQueue: o.offlineQueue });
  const { retryStrategy, enableOfflineQueue: _, lazyConnect: __, ...redisOptions } = o.redis;
  const u = new URL(o.url);
  const auth = {
    ...(u.username === '' ? {} : { username: decodeURIComponent(u.username) }),
    ...(u.password === '' ? {} : { password: decodeURIComponent(u.password) }),
  };
  return new Cluster([{ host: u.hostname, port: Number(u.port || 6379) }], {
    lazyConnect: true,
    enableOfflineQueue: o.offlineQueue,
    // Commands issued in one turn go out as one pipeline per master.
    enableAutoPipelining: true,
    ...(retryStrategy === undefined ? {} : { clusterRetryStrategy: retryStrategy }),
    redisOptions: { ...redisOptions, ...auth },
  });
}

/**
 * Commands sent together. On one server: a pipeline, in order on one connection. On a cluster
 * the keys of a batch live on several masters and a pipeline may not span them, so the commands
 * go out auto-pipelined per master; publishes wait until every write is acknowledged, which
 * keeps the one guarantee the transport needs: Redis holds the writes before a delta announces
 * them.
 */
export class CommandBatch {
  private readonly pipeline: ReturnType<Redis['pipeline']> | undefined;
  private readonly writes: (() => Promise<unknown>)[] = [];
  private readonly publishes: [string, Buffer][] = [];

  constructor(private readonly client: RedisClient) {
    if (!(client instanceof Cluster)) this.pipeline = client.pipeline();
  }

  hset(key: string, field: string, value: Buffer): void {
    if (this.pipeline !== undefined) this.pipeline.hset(key, field, value);
    else this.writes.push(() => this.client.hset(key, field, value));
  }

  pexpire(key: string, ms: number): void {
    if (this.pipeline !== undefined) this.pipeline.pexpire(key, ms);
    else this.writes.push(() => this.client.pexpire(key, ms));
  }

  hgetallBuffer(key: string): void {
    if (this.pipeline !== undefined) this.pipeline.hgetallBuffer(key);
    else this.writes.push(() => this.client.hgetallBuffer(key));
  }

  publish(channel: string, message: Buffer): void {
    if (this.pipeline !== undefined) this.pipeline.publish(channel, message);
    else this.publishes.push([channel, message]);
  }

  /** Sends everything; resolves to each command's result in order, or throws the first error. */
  async exec(): Promise<unknown[]> {
    if (this.pipeline !== undefined) {
      const results = await this.pipeline.exec();
      if (results === null) throw new Error('pipeline aborted');
      return results.map(([error, value]) => {
        if (error !== null) throw error;
        return value;
      });
    }
    const values = await Promise.all(this.writes.map((w) => w()));
    for (const [channel, message] of this.publishes) {
      values.push(await this.client.publish(channel, message));
    }
    return values;
  }
}

/** The connections SCAN must visit: the server, or every master of the cluster. */
export function scanTargets(client: RedisClient): Redis[] {
  return client instanceof Cluster ? client.nodes('master') : [client];
}

/**
 * The run id of the server, or of every master (sorted, joined): it changes when any of them
 * restarted or failed over, which may have lost what this replica wrote there.
 */
export async function readRunIds(client: RedisClient): Promise<string | undefined> {
  const infos = await Promise.all(scanTargets(client).map((node) => node.info('server')));
  const ids = infos.map((info) => /run_id:([0-9a-f]+)/.exec(info)?.[1]);
  if (ids.some((id) => id === undefined)) return undefined;
  return ids.sort().join(',');
}
