import http2 from 'node:http2';
import { type AgentPolicy, definePolicy, encodeEntries } from '@openclaw-edge/core';
import { Limiter } from '@openclaw-edge/engine';
import { afterEach, describe, expect, it } from 'vitest';
import {
  computeDigest,
  DIGEST_BUCKETS,
  type Digest,
  decodeDigest,
  differingBuckets,
  digestBucketOf,
  encodeDigest,
} from '../src/replication/digest.js';
import { FrameCodec, type FrameError, FrameKind } from '../src/replication/frame.js';
import { antiEntropyTarget, type MeshOptions, MeshTransport } from '../src/replication/mesh.js';
import { decodeOverrides, encodeOverrides, OverrideLog } from '../src/replication/overrides.js';
import type { ReplicationTransport } from '../src/replication/replicator.js';
import { TestDns } from './dns-server.js';
import { eventually, freePorts } from './harness.js';
import {
  forgedDelta,
  policy,
  remaining,
  SECRET,
  type Replica as Shared,
  startInProcessReplica,
} from './replicas.js';

type Replica = Shared<MeshTransport>;

const running: Shared<ReplicationTransport>[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.replicator.stop()));
});

function startReplica(
  nodeId: string,
  port: number,
  peers: string[],
  options: {
    secret?: string;
    incarnation?: number;
    host?: string;
    dns?: MeshOptions['dns'];
    policy?: AgentPolicy;
  } = {},
): Promise<Replica> {
  return startInProcessReplica(
    running,
    nodeId,
    () =>
      new MeshTransport({
        host: options.host ?? '127.0.0.1',
        port,
        peers,
        ...(options.dns === undefined ? {} : { dns: options.dns }),
        timeoutMs: 1000,
        maxEntriesPerMessage: 500,
      }),
    options,
  );
}

describe('frames', () => {
  const codec = new FrameCodec(SECRET, 4096);
  const frame = {
    kind: FrameKind.delta,
    nodeId: 'edge-1',
    incarnation: 1234,
    seq: 7,
    sentAtMs: 1_700_000_000_123,
    payload: new Uint8Array([1, 2, 3]),
  };

  it('round-trips every header field and the payload', () => {
    const decoded = codec.decode(codec.encode(frame));
    expect({ ...decoded, payload: [...decoded.payload] }).toEqual({ ...frame, payload: [1, 2, 3] });
  });

  it('refuses a frame signed with another secret, a flipped bit, truncation and oversize', () => {
    const bytes = codec.encode(frame);
    const code = (b: Uint8Array, c = codec) => {
      try {
        c.decode(b);
        return 'accepted';
      } catch (error) {
        return (error as FrameError).code;
      }
    };
    expect(code(new FrameCodec('another-secret-entirely', 4096).encode(frame))).toBe(
      'frame_unauthenticated',
    );
    for (const at of [0, 5, 20, bytes.length - 40, bytes.length - 1]) {
      const tampered = Buffer.from(bytes);
      tampered[at] = (tampered[at] as number) ^ 0x01;
      expect(code(tampered)).not.toBe('accepted');
    }
    expect(code(bytes.subarray(0, bytes.length - 1))).not.toBe('accepted');
    expect(code(Buffer.alloc(0))).toBe('frame_malformed');
    expect(
      code(
        new FrameCodec(SECRET, 64).encode({ ...frame, payload: new Uint8Array(100) }),
        new FrameCodec(SECRET, 64),
      ),
    ).toBe('frame_too_large');
  });
});

describe('digests', () => {
  it('match for the same counters whatever the overflow, and locate a difference', async () => {
    const a = new Limiter({ nodeId: 'a', incarnation: 1, defaultPolicy: policy });
    const b = new Limiter({ nodeId: 'b', incarnation: 1, defaultPolicy: policy });
    for (let i = 0; i < 300; i++) a.check(`agent-${i}`, 1 + (i % 3), 1000);
    b.merge(a.drainDirty(1000), 1000);
    // b normalises much later (raising its overflow as the buckets refill): still equal.
    expect(
      differingBuckets(await computeDigest(a, () => 1000), await computeDigest(b, () => 900_000)),
    ).toEqual([]);
    a.check('agent-7', 1, 2000);
    const differ = differingBuckets(
      await computeDigest(a, () => 2000),
      await computeDigest(b, () => 2000),
    );
    expect(differ).toEqual([digestBucketOf('agent-7')]);
    // A digest of a range covers only its buckets, and survives the wire.
    const bucket = differ[0] as number;
    const inside = { from: bucket, count: 1 };
    const outside = { from: (bucket + 1) % DIGEST_BUCKETS, count: 1 };
    const wire = (d: Digest) => decodeDigest(encodeDigest(d)) as Digest;
    expect(
      differingBuckets(
        wire(await computeDigest(a, () => 2000, inside)),
        await computeDigest(b, () => 2000, inside),
      ),
    ).toEqual([bucket]);
    expect(
      differingBuckets(
        await computeDigest(a, () => 2000, outside),
        await computeDigest(b, () => 2000, outside),
      ),
    ).toEqual([]);
    expect(decodeDigest(Buffer.from([0, 0, 4, 1]))).toBeUndefined();
  });
});

describe('anti-entropy rounds', () => {
  it('take every peer through every slice of the digest buckets', () => {
    for (let peers = 1; peers <= 6; peers++) {
      const seen = Array.from({ length: peers }, () => new Set<number>());
      for (let round = 0; round < 16 * peers; round++) {
        const t = antiEntropyTarget(round, peers);
        seen[t.peer]?.add(t.range.from);
        expect(t.range.count).toBe(DIGEST_BUCKETS / 16);
      }
      for (const slices of seen) expect(slices.size).toBe(16);
    }
  });
});

describe('mesh replication (in-process replicas over loopback HTTP/2)', () => {
  it('converges three replicas after traffic on all of them', async () => {
    const ports = await freePorts(3);
    const peers = ports.map((p) => `127.0.0.1:${p}`);
    const replicas = await Promise.all(
      ['r1', 'r2', 'r3'].map((id, i) => startReplica(id, ports[i] as number, peers)),
    );
    for (const r of replicas) {
      expect(r.replicator.peers().map((p) => p.nodeId)).toEqual(
        ['r1', 'r2', 'r3'].filter((id) => id !== r.limiter.nodeId),
      );
    }
    // 20 agents; each replica charges each agent 10 tokens.
    const now = Date.now();
    for (const r of replicas) {
      for (let a = 0; a < 20; a++) {
        for (let k = 0; k < 10; k++)
          expect(r.limiter.check(`agent-${a}`, 1, now).allowed).toBe(true);
      }
    }
    await eventually(() =>
      replicas.every((r) =>
        [...Array(20).keys()].every((a) => remaining(r, `agent-${a}`) <= 70.01),
      ),
    );
    for (const r of replicas) {
      for (let a = 0; a < 20; a++) expect(remaining(r, `agent-${a}`)).toBeCloseTo(70, 0);
    }
    // Heartbeats move every replica's sync point to within a few intervals of now.
    await eventually(() => replicas.every((r) => Date.now() - r.limiter.syncPointMs < 200));
  });

  it('repairs a lost delta: the receiver sees the gap, pulls, and hears the peer again', async () => {
    const ports = await freePorts(2);
    const peers = ports.map((p) => `127.0.0.1:${p}`);
    const [a, b] = await Promise.all([
      startReplica('a', ports[0] as number, peers),
      startReplica('b', ports[1] as number, peers),
    ]);
    await eventually(() => b.replicator.peers()[0]?.synced === true);
    // Lose one delta of a's: drain it ourselves instead of sending it.
    a.limiter.check('lost', 40, Date.now());
    a.limiter.drainDirty(Date.now());
    // Nothing is missing in the seq numbers, so the repair comes from anti-entropy.
    await eventually(() => remaining(b, 'lost') < 61);
    expect(remaining(b, 'lost')).toBeCloseTo(60, 0);
    expect(b.replicator.peers()[0]?.synced).toBe(true);

    // A real seq gap: a delta from a that skips numbers. b stops hearing a until a pull.
    const codec = new FrameCodec(SECRET, 1024 * 1024);
    const gapsBefore = b.replicator.stats.gaps;
    const skipped = codec.encode({
      kind: FrameKind.delta,
      nodeId: 'a',
      incarnation: a.replicator.context.incarnation,
      seq: a.replicator.context.currentSeq() + 5,
      sentAtMs: Date.now(),
      payload: encodeEntries([]),
    });
    expect(b.replicator.receive(skipped)).toBe(true);
    expect(b.replicator.stats.gaps).toBe(gapsBefore + 1);
    expect(b.replicator.peers()[0]?.synced).toBe(false);
    const pullsAfterGap = b.replicator.stats.pulls;
    await eventually(() => b.replicator.stats.pulls > pullsAfterGap);
  });

  it('refuses frames signed with another secret and keeps replicating', async () => {
    const ports = await freePorts(2);
    const peers = ports.map((p) => `127.0.0.1:${p}`);
    const [a, b] = await Promise.all([
      startReplica('a', ports[0] as number, peers),
      startReplica('b', ports[1] as number, peers),
    ]);
    const forged = forgedDelta('a');
    const statuses: number[] = [];
    const session = http2.connect(`http://127.0.0.1:${ports[1]}`);
    for (const body of [forged, Buffer.from('garbage'), Buffer.alloc(2 * 1024 * 1024)]) {
      statuses.push(
        await new Promise<number>((resolve, reject) => {
          const req = session.request({ ':method': 'POST', ':path': '/replication/v1/delta' });
          req.on('response', (h) => resolve(Number(h[':status'])));
          req.on('error', reject);
          req.end(body);
        }),
      );
    }
    session.close();
    expect(statuses).toEqual([400, 400, 413]);
    expect(b.replicator.stats.rejected).toBe(3);
    a.limiter.check('after', 5, Date.now());
    await eventually(() => remaining(b, 'after') < 96);
  });

  it('finds peers through DNS and follows the fleet as records come and go', async () => {
    // Three replicas on 127.0.0.1-3 (all loopback on Linux), one port, found by one name.
    const dns = await TestDns.start('edge-peers.test');
    const [port] = await freePorts(1);
    const discovery = {
      name: 'edge-peers.test',
      port: port as number,
      intervalMs: 100,
      servers: [dns.server],
    };
    try {
      dns.addresses = ['127.0.0.1', '127.0.0.2'];
      const start = (id: string, host: string) =>
        startReplica(id, port as number, [], { host, dns: discovery });
      const [d1, d2] = await Promise.all([start('d1', '127.0.0.1'), start('d2', '127.0.0.2')]);
      const ids = (r: Replica) => r.replicator.peers().map((p) => p.nodeId);
      expect(ids(d1)).toEqual(['d2']);
      expect(ids(d2)).toEqual(['d1']);
      // Scale up: a third record; the others find the new replica without a restart.
      dns.addresses = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
      const d3 = await start('d3', '127.0.0.3');
      expect(ids(d3)).toEqual(['d1', 'd2']);
      await eventually(() => ids(d1).join() === 'd2,d3' && ids(d2).join() === 'd1,d3');
      d3.limiter.check('via-dns', 25, Date.now());
      await eventually(() => remaining(d1, 'via-dns') < 76 && remaining(d2, 'via-dns') < 76);
      // Scale down: d2's record goes away; the others drop it from the peer set.
      dns.addresses = ['127.0.0.1', '127.0.0.3'];
      await eventually(() => ids(d1).join() === 'd3' && ids(d3).join() === 'd1');
      expect(d1.limiter.replicas).toBe(2);
      // A DNS outage keeps the last answer: the fleet does not shrink.
      await dns.close();
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(ids(d1)).toEqual(['d3']);
    } finally {
      await dns.close().catch(() => {});
    }
  });

  it('notices when another replica answers at a peer address', async () => {
    const ports = await freePorts(2);
    const peers = ports.map((p) => `127.0.0.1:${p}`);
    const a = await startReplica('a', ports[0] as number, peers);
    const old = await startReplica('old', ports[1] as number, peers);
    await eventually(() => a.replicator.peers()[0]?.nodeId === 'old');
    await old.replicator.stop();
    running.splice(running.indexOf(old), 1);
    await startReplica('new', ports[1] as number, peers);
    await eventually(
      () =>
        a.replicator
          .peers()
          .map((p) => p.nodeId)
          .join() === 'new',
    );
    expect(a.limiter.replicas).toBe(2);
  });

  it('counts state of limits a replica does not configure (configs that differ)', async () => {
    const ports = await freePorts(2);
    const peers = ports.map((p) => `127.0.0.1:${p}`);
    const other = definePolicy([{ name: 'tokens', capacity: 10, refill: 1, per: 'second' }]);
    const [a, b] = await Promise.all([
      startReplica('a', ports[0] as number, peers),
      startReplica('b', ports[1] as number, peers, { policy: other }),
    ]);
    a.limiter.check('drift', 1, Date.now());
    await eventually(() => b.replicator.status().unknown_limit_entries > 0);
    expect(a.replicator.status().unknown_limit_entries).toBe(0);
  });

  it('carries runtime policy overrides to every replica, newcomers included, last writer wins', async () => {
    const ports = await freePorts(3);
    const peers = ports.map((p) => `127.0.0.1:${p}`);
    const [a, b] = await Promise.all([
      startReplica('a', ports[0] as number, peers),
      startReplica('b', ports[1] as number, peers),
    ]);
    const gold = definePolicy([{ name: 'rpm', capacity: 500, refill: 500, per: 'minute' }]);
    a.limiter.setOverride('vip', gold, Date.now());
    a.replicator.overrideChanged('vip', gold);
    await eventually(() => b.limiter.getOverride('vip') !== undefined);
    expect(b.limiter.peek('vip', Date.now()).limits[0]?.limit.capacityTokens).toBe(500);
    // A replica that starts later learns it in its first hello.
    const c = await startReplica('c', ports[2] as number, peers);
    expect(c.limiter.getOverride('vip')?.limits[0]?.capacityTokens).toBe(500);
    // A later removal on another replica wins everywhere.
    await new Promise((resolve) => setTimeout(resolve, 5));
    b.limiter.clearOverride('vip', Date.now());
    b.replicator.overrideChanged('vip', undefined);
    await eventually(
      () =>
        a.limiter.getOverride('vip') === undefined && c.limiter.getOverride('vip') === undefined,
    );
  });
});

describe('override records', () => {
  const gold = definePolicy([{ name: 'rpm', capacity: 500, refill: 500, per: 'minute' }]);

  it('order by time, then node id, whatever the arrival order', () => {
    const records = [
      { agentId: 'x', policy: gold, at: 10, node: 'a' },
      { agentId: 'x', policy: undefined, at: 10, node: 'b' },
      { agentId: 'x', policy: gold, at: 9, node: 'z' },
    ];
    for (const order of [records, [...records].reverse()]) {
      const log = new OverrideLog();
      for (const r of order) log.offer(r);
      expect(log.all()).toEqual([records[1]]);
    }
  });

  it('a change made here wins over a record stamped by a clock ahead of this one', () => {
    const ahead = { agentId: 'x', policy: gold, at: 5_000, node: 'b' };
    const log = new OverrideLog();
    log.offer(ahead);
    const mine = log.stamp('x', undefined, 1_000, 'a');
    expect(mine).toEqual({ agentId: 'x', policy: undefined, at: 5_001, node: 'a' });
    expect(log.all()).toEqual([mine]);
    // Every replica that holds the record it replaced takes it.
    const peer = new OverrideLog();
    peer.offer(ahead);
    expect(peer.offer(mine)).toBe(true);
    // Without a later record held, the change is stamped with the time it was made.
    expect(new OverrideLog().stamp('y', gold, 1_000, 'a').at).toBe(1_000);
  });

  it('survive the wire, and malformed payloads are refused', () => {
    const wire = decodeOverrides(
      encodeOverrides([{ agentId: 'x', policy: gold, at: 1, node: 'a' }]),
    );
    expect(wire[0]?.policy?.limits[0]?.capacityTokens).toBe(500);
    expect(wire[0]?.policy?.limits[0]?.fingerprint).toBe(gold.limits[0]?.fingerprint);
    for (const bad of [
      '{}',
      '[{"agent_id":"x","limits":[],"at":1,"node":"a"}]',
      '[{"agent_id":"x","limits":[{"name":"r","capacityTokens":-1,"refillPerMs":1}],"at":1,"node":"a"}]',
      '[{"agent_id":"x","limits":null,"at":"soon","node":"a"}]',
      'not json',
    ]) {
      expect(() => decodeOverrides(Buffer.from(bad))).toThrow();
    }
  });
});
