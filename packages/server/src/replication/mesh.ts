import { Resolver } from 'node:dns/promises';
import http2, {
  type ClientHttp2Session,
  type Http2Server,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { type BucketEntry, decodeEntries, encodeEntries } from '@openclaw-edge/core';
import {
  DIGEST_BUCKETS,
  type DigestRange,
  decodeBucketList,
  decodeDigest,
  differingBuckets,
  encodeBucketList,
  encodeDigest,
  FULL_RANGE,
} from './digest.js';
import { type Frame, FrameError, FrameKind } from './frame.js';
import type { PullPoint, ReplicaContext, ReplicationTransport } from './replicator.js';

/**
 * The `mesh` transport: replicas talk directly over HTTP/2 without TLS (h2c), on a port of
 * their own, every request and response body a signed frame (frame.ts). Deltas are pushed to
 * each peer one at a time, in order; digests and repairs are request/response. Peers are
 * addresses from a static list and/or a DNS name (a Kubernetes headless Service), re-resolved
 * periodically; the node id behind an address is learned by a `hello`.
 */
export interface MeshOptions {
  readonly host: string;
  readonly port: number;
  /** `host:port` addresses of peers (this replica's own address may be among them). */
  readonly peers: readonly string[];
  readonly dns?: {
    readonly name: string;
    readonly port: number;
    readonly intervalMs: number;
    /** DNS servers (`ip` or `ip:port`) instead of the system's (/etc/resolv.conf). */
    readonly servers?: readonly string[];
  };
  /** Per request. */
  readonly timeoutMs: number;
  /** Entries per repair response or request. */
  readonly maxEntriesPerMessage: number;
}

const PATHS = {
  delta: '/replication/v1/delta',
  hello: '/replication/v1/hello',
  digest: '/replication/v1/digest',
  want: '/replication/v1/want',
  entries: '/replication/v1/entries',
} as const;

/** Least wait for a digest or repair answer. */
const REPAIR_TIMEOUT_MS = 30_000;

/** Anti-entropy rounds it takes to compare the whole state (each round covers one slice). */
const ANTI_ENTROPY_SLICES = 16;

/**
 * Which peer (an index among `peers`) and which digest buckets anti-entropy round `round`
 * compares: peers in turn, and for each peer the next of {@link ANTI_ENTROPY_SLICES} slices, so
 * every peer goes through every slice. (With slice = round % slices, two peers and sixteen slices
 * would pair each peer with half the slices forever.)
 */
export function antiEntropyTarget(
  round: number,
  peers: number,
): { peer: number; range: DigestRange } {
  const count = DIGEST_BUCKETS / ANTI_ENTROPY_SLICES;
  const slice = Math.floor(round / peers) % ANTI_ENTROPY_SLICES;
  return { peer: round % peers, range: { from: slice * count, count } };
}

/** Deltas waiting for one peer beyond this are dropped, oldest first (the peer repairs the gap). */
const MAX_QUEUED_DELTAS = 64;

/** One peer address: its HTTP/2 session, the node id found there and its outgoing delta queue. */
class PeerLink {
  nodeId: string | undefined;
  /** The address answered with our own node id. */
  self = false;
  reachable = false;
  private session: ClientHttp2Session | undefined;
  private readonly queue: Buffer[] = [];
  private sending = false;
  private helloRunning: Promise<void> | undefined;
  /** A new connection was opened since the last hello: the node behind the address may differ. */
  private unverified = false;

  constructor(
    readonly address: string,
    private readonly mesh: MeshTransport,
  ) {}

  /** The id this address counts as in the peer set: its node id once known. */
  get memberId(): string {
    return this.nodeId ?? `peer-${this.address.replace(/[^A-Za-z0-9_.:-]/g, '-')}`.slice(0, 64);
  }

  enqueue(frame: Buffer): void {
    if (this.self) return;
    this.queue.push(frame);
    if (this.queue.length > MAX_QUEUED_DELTAS) this.queue.shift();
    void this.flush();
  }

  private async flush(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      if (this.nodeId === undefined || this.unverified) await this.hello();
      while (this.queue.length > 0 && !this.self) {
        await this.post(PATHS.delta, this.queue.shift() as Buffer);
      }
    } catch {
      // Unreachable: drop what waits (the peer pulls after the gap) and try again next tick.
      this.queue.length = 0;
    } finally {
      this.sending = false;
    }
  }

  /**
   * Learns the node id at this address: at first contact and again after every lost connection
   * (another replica may answer there now). Coalesced.
   */
  hello(): Promise<void> {
    this.helloRunning ??= (async () => {
      try {
        const c = this.mesh.context;
        // Both sides carry the overrides they know: a newcomer learns the fleet's at once.
        const answer = await this.exchange(
          PATHS.hello,
          this.mesh.frame(FrameKind.hello, c.overridesPayload()),
        );
        if (answer.payload.length > 0 && !c.mergeOverrides(answer.payload)) {
          c.countRejected('bad_overrides');
        }
        this.unverified = false;
        if (answer.nodeId === c.nodeId && answer.incarnation === c.incarnation) {
          this.self = true;
          this.queue.length = 0;
        } else if (answer.nodeId === c.nodeId) {
          c.logger.error(
            { address: this.address, node_id: c.nodeId },
            'another replica uses this node id: give every replica its own node_id',
          );
        } else {
          if (this.nodeId !== undefined && this.nodeId !== answer.nodeId) {
            c.setReachable(this.nodeId, false);
          }
          this.nodeId = answer.nodeId;
          c.setReachable(answer.nodeId, true);
        }
        this.mesh.membershipChanged();
      } finally {
        this.helloRunning = undefined;
      }
    })();
    return this.helloRunning;
  }

  /** Sends a signed request frame; expects a signed frame back. */
  async exchange(path: string, frame: Buffer, timeoutMs?: number): Promise<Frame> {
    const body = await this.post(path, frame, timeoutMs);
    let answer: Frame;
    try {
      answer = this.mesh.context.codec.decode(body);
    } catch (error) {
      this.mesh.context.countRejected(error instanceof FrameError ? error.code : 'frame_malformed');
      throw error;
    }
    this.mesh.context.countBytes('received', body.length);
    return answer;
  }

  post(path: string, body: Buffer, timeoutMs = this.mesh.options.timeoutMs): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      let session: ClientHttp2Session;
      try {
        session = this.connect();
      } catch (error) {
        this.failed();
        reject(error);
        return;
      }
      const req = session.request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/octet-stream',
        'content-length': body.length,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      let status = 0;
      const max = this.mesh.context.codec.maxBytes;
      req.setTimeout(timeoutMs, () => req.close(http2.constants.NGHTTP2_CANCEL));
      req.on('response', (headers) => {
        status = Number(headers[':status']);
      });
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > max) req.close(http2.constants.NGHTTP2_CANCEL);
        else chunks.push(chunk);
      });
      req.on('error', (error) => {
        this.failed();
        reject(error);
      });
      req.on('close', () => {
        if (status === 0 || size > max) {
          this.failed();
          reject(new Error(`no answer from ${this.address}`));
          return;
        }
        if (status >= 300) {
          reject(new Error(`${this.address} answered ${status} to ${path}`));
          return;
        }
        this.setReachable(true);
        resolve(Buffer.concat(chunks));
      });
      req.end(body);
      this.mesh.context.countBytes('sent', body.length);
    });
  }

  private connect(): ClientHttp2Session {
    if (this.session !== undefined && !this.session.closed && !this.session.destroyed) {
      return this.session;
    }
    // A new connection may reach another process than the last one did: ask again who it is.
    if (this.nodeId !== undefined) this.unverified = true;
    const session = http2.connect(`http://${this.address}`);
    session.on('error', () => this.failed());
    session.on('goaway', () => this.dropSession(session));
    session.on('close', () => this.dropSession(session));
    session.unref();
    this.session = session;
    return session;
  }

  private dropSession(session: ClientHttp2Session): void {
    if (this.session === session) this.session = undefined;
  }

  private failed(): void {
    this.session?.destroy();
    this.session = undefined;
    this.setReachable(false);
  }

  private setReachable(up: boolean): void {
    if (up === this.reachable) return;
    this.reachable = up;
    if (this.nodeId !== undefined) this.mesh.context.setReachable(this.nodeId, up);
  }

  /** A delta is on its way to this peer. */
  get busy(): boolean {
    return this.sending;
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }
}

/** See {@link MeshOptions}. */
export class MeshTransport implements ReplicationTransport {
  readonly kind = 'mesh' as const;
  private server: Http2Server | undefined;
  private readonly links = new Map<string, PeerLink>();
  private dnsTimer: NodeJS.Timeout | undefined;
  private dnsAddresses: string[] = [];
  private resolver: Resolver | undefined;
  /**
   * Digest and repair requests wait longer than deltas: the peer computes a digest first, which
   * visits every agent (about 2 s at a million agents).
   */
  private get repairTimeoutMs(): number {
    return Math.max(REPAIR_TIMEOUT_MS, this.options.timeoutMs);
  }
  /** Sessions peers opened to our listener. */
  private readonly sessions = new Set<ServerHttp2Session>();
  private nextRound = 0;
  private ctx: ReplicaContext | undefined;

  constructor(readonly options: MeshOptions) {}

  get context(): ReplicaContext {
    if (this.ctx === undefined) throw new Error('mesh transport not started');
    return this.ctx;
  }

  /** The port the peer listener is bound to (useful with port 0). */
  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  async start(context: ReplicaContext): Promise<void> {
    this.ctx = context;
    // Bodies are read before they can be authenticated: bound what one client can make us hold.
    const server = http2.createServer({ settings: { maxConcurrentStreams: 16 } });
    server.on('stream', (stream, headers) => {
      void this.serve(stream, String(headers[':method']), String(headers[':path']));
    });
    server.on('sessionError', () => {});
    server.on('session', (session) => {
      this.sessions.add(session);
      session.on('close', () => this.sessions.delete(session));
    });
    await new Promise<void>((resolve, reject) => {
      const failed = (error: NodeJS.ErrnoException) => {
        // The CLI names the setting to change; this one is not the API's address.
        reject(
          Object.assign(
            new Error(`peer listener ${this.options.host}:${this.options.port}: ${error.message}`),
            { code: error.code, setting: 'replication.mesh.host and replication.mesh.port' },
          ),
        );
      };
      server.once('error', failed);
      server.listen(this.options.port, this.options.host, () => {
        server.off('error', failed);
        server.on('error', (error) =>
          context.logger.error({ err: error }, 'replication listener failed'),
        );
        resolve();
      });
    });
    this.server = server;
    if (this.options.dns !== undefined) {
      await this.resolveDns();
      this.dnsTimer = setInterval(() => void this.resolveDns(), this.options.dns.intervalMs);
      this.dnsTimer.unref();
    }
    this.syncLinks();
    // Learn who is where before the replicator's start-up pulls.
    await Promise.allSettled([...this.links.values()].map((link) => link.hello()));
    this.membershipChanged();
  }

  async stop(): Promise<void> {
    clearInterval(this.dnsTimer);
    // Let the final delta go out (bounded by the request timeout).
    const deadline = Date.now() + this.options.timeoutMs;
    while (Date.now() < deadline && [...this.links.values()].some((l) => l.busy)) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    for (const link of this.links.values()) link.close();
    const server = this.server;
    if (server !== undefined) {
      // Peers keep their sessions open: close them (in-flight streams finish), then force.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of this.sessions) session.close();
      await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 1000))]);
      for (const session of this.sessions) session.destroy();
      await closed;
    }
  }

  broadcast(frame: Buffer): void {
    for (const link of this.links.values()) link.enqueue(frame);
  }

  async pull(nodeId: string): Promise<PullPoint | undefined> {
    const link = [...this.links.values()].find((l) => l.nodeId === nodeId);
    if (link === undefined) return undefined;
    return this.syncWith(link, false);
  }

  /**
   * One round: the next peer (round robin) and, for that peer, the next of
   * {@link ANTI_ENTROPY_SLICES} slices of the digest buckets ({@link antiEntropyTarget}), so a
   * round moves a slice of what differs (under steady traffic almost every digest bucket differs
   * at any moment, by the deltas in flight) and the whole state is compared with each peer every
   * {@link ANTI_ENTROPY_SLICES} of its rounds. Partial rounds repair; only a full one
   * would place the peer in its stream, so they report no pull point.
   */
  async antiEntropy(): Promise<undefined> {
    const candidates = [...this.links.values()].filter((l) => l.nodeId !== undefined && !l.self);
    if (candidates.length === 0) return undefined;
    const target = antiEntropyTarget(this.nextRound++, candidates.length);
    const link = candidates[target.peer] as PeerLink;
    await this.syncWith(link, true, target.range);
    return undefined;
  }

  /**
   * Signs a frame of this replica. Non-delta kinds carry the current delta seq and time, or those
   * of `at` when the caller read them before the state it sends.
   */
  frame(
    kind: FrameKind,
    payload: Uint8Array,
    at: { readonly seq: number; readonly sentAtMs: number } = this.position(),
  ): Buffer {
    const c = this.context;
    return c.codec.encode({
      kind,
      nodeId: c.nodeId,
      incarnation: c.incarnation,
      seq: at.seq,
      sentAtMs: at.sentAtMs,
      payload,
    });
  }

  private position(): { seq: number; sentAtMs: number } {
    return { seq: this.context.currentSeq(), sentAtMs: this.context.now() };
  }

  /** Recomputes the peer set: every address's node id (or its placeholder until known). */
  membershipChanged(): void {
    if (this.ctx === undefined) return;
    const ids = [...this.links.values()].filter((l) => !l.self).map((l) => l.memberId);
    this.ctx.setMembers(ids);
  }

  /**
   * Digest exchange with one peer over a range of digest buckets: merges the peer's state of every
   * digest bucket that differs and, when `pushBack`, sends ours for them. Returns where the peer
   * was when it compared (a pull point when the range is the full one).
   */
  private async syncWith(
    link: PeerLink,
    pushBack: boolean,
    range: DigestRange = FULL_RANGE,
  ): Promise<PullPoint> {
    const c = this.context;
    const mine = await c.digest(range);
    const first = await link.exchange(
      PATHS.digest,
      this.frame(FrameKind.digest, encodeDigest(mine)),
      this.repairTimeoutMs,
    );
    if (first.kind !== FrameKind.entries)
      throw new Error('digest answered with a wrong frame kind');
    let page = parseEntriesPayload(first.payload);
    const differing = page.differing;
    c.mergeEntries(page.entries);
    while (page.rest.length > 0) {
      const next = await link.exchange(
        PATHS.want,
        this.frame(FrameKind.want, encodeBucketList(page.rest)),
        this.repairTimeoutMs,
      );
      page = parseEntriesPayload(next.payload);
      c.mergeEntries(page.entries);
    }
    if (pushBack) {
      let rest = differing;
      while (rest.length > 0) {
        const out = await c.entriesOf(rest, this.options.maxEntriesPerMessage);
        rest = out.rest;
        if (out.entries.length === 0) continue;
        await link.post(
          PATHS.entries,
          this.frame(FrameKind.entries, entriesPayload([], [], out.entries)),
          this.repairTimeoutMs,
        );
      }
    }
    return { sentAtMs: first.sentAtMs, incarnation: first.incarnation, seq: first.seq };
  }

  /** Answers one request from a peer. Every body must be a frame signed with the secret. */
  private async serve(stream: ServerHttp2Stream, method: string, path: string): Promise<void> {
    const c = this.context;
    const reply = (status: number, body?: Buffer) => {
      if (stream.closed || stream.destroyed) return;
      stream.respond({ ':status': status, 'content-type': 'application/octet-stream' });
      stream.end(body);
    };
    stream.on('error', () => {});
    if (method !== 'POST' || !Object.values(PATHS).includes(path as never)) {
      reply(404);
      return;
    }
    const body = await readBody(stream, c.codec.maxBytes);
    if (body === undefined) {
      c.countRejected('frame_too_large');
      reply(413);
      return;
    }
    c.countBytes('received', body.length);
    if (path === PATHS.delta) {
      reply(c.receive(body) ? 204 : 400);
      return;
    }
    let frame: Frame;
    try {
      frame = c.codec.decode(body);
    } catch (error) {
      const code = error instanceof FrameError ? error.code : 'frame_malformed';
      c.countRejected(code);
      reply(code === 'frame_unauthenticated' ? 401 : 400);
      return;
    }
    const answer = (
      payload: Uint8Array,
      kind: FrameKind = FrameKind.entries,
      at = this.position(),
    ) => {
      const out = this.frame(kind, payload, at);
      c.countBytes('sent', out.length);
      reply(200, out);
    };
    switch (path) {
      case PATHS.hello:
        if (frame.payload.length > 0 && !c.mergeOverrides(frame.payload)) break;
        answer(c.overridesPayload(), FrameKind.hello);
        return;
      case PATHS.digest: {
        const theirs = frame.kind === FrameKind.digest ? decodeDigest(frame.payload) : undefined;
        if (theirs === undefined) break;
        // Time and seq are read before the state: the state covers at least them.
        const at = this.position();
        const differing = differingBuckets(await c.digest(theirs), theirs);
        const out = await c.entriesOf(differing, this.options.maxEntriesPerMessage);
        answer(entriesPayload(differing, out.rest, out.entries), FrameKind.entries, at);
        return;
      }
      case PATHS.want: {
        const buckets = frame.kind === FrameKind.want ? decodeBucketList(frame.payload) : undefined;
        if (buckets === undefined) break;
        const out = await c.entriesOf(buckets, this.options.maxEntriesPerMessage);
        answer(entriesPayload([], out.rest, out.entries));
        return;
      }
      case PATHS.entries: {
        if (frame.kind !== FrameKind.entries) break;
        try {
          c.mergeEntries(parseEntriesPayload(frame.payload).entries);
        } catch {
          break;
        }
        reply(204);
        return;
      }
    }
    c.countRejected('bad_request');
    reply(400);
  }

  private async resolveDns(): Promise<void> {
    const dns = this.options.dns;
    if (dns === undefined) return;
    this.resolver ??= new Resolver({ timeout: Math.min(5000, dns.intervalMs), tries: 2 });
    if (dns.servers !== undefined) this.resolver.setServers(dns.servers);
    // A and AAAA records: a name with only one kind answers the other with "no data".
    const [v4, v6] = await Promise.allSettled([
      this.resolver.resolve4(dns.name),
      this.resolver.resolve6(dns.name),
    ]);
    if (v4.status === 'rejected' && v6.status === 'rejected') {
      // Keep the last answer: a DNS hiccup is not the fleet shrinking.
      this.context.logger.warn({ err: v4.reason, name: dns.name }, 'peer DNS lookup failed');
      return;
    }
    this.dnsAddresses = [
      ...(v4.status === 'fulfilled' ? v4.value.map((a) => `${a}:${dns.port}`) : []),
      ...(v6.status === 'fulfilled' ? v6.value.map((a) => `[${a}]:${dns.port}`) : []),
    ];
    if (this.server !== undefined) {
      this.syncLinks();
      this.membershipChanged();
    }
  }

  /** Makes the links match the configured and resolved addresses. */
  private syncLinks(): void {
    const wanted = new Set([...this.options.peers, ...this.dnsAddresses]);
    for (const [address, link] of this.links) {
      if (!wanted.has(address)) {
        link.close();
        this.links.delete(address);
      }
    }
    for (const address of wanted) {
      if (!this.links.has(address)) {
        const link = new PeerLink(address, this);
        this.links.set(address, link);
        void link.hello().catch(() => {});
      }
    }
  }
}

/** An `entries` payload: the digest buckets that differed, those not sent yet, the entries. */
function entriesPayload(
  differing: readonly number[],
  rest: readonly number[],
  entries: readonly BucketEntry[],
): Buffer {
  return Buffer.concat([
    encodeBucketList(differing),
    encodeBucketList(rest),
    encodeEntries(entries),
  ]);
}

function parseEntriesPayload(payload: Buffer): {
  differing: number[];
  rest: number[];
  entries: BucketEntry[];
} {
  const differing = decodeBucketList(payload.subarray(0, 2 + payload.readUInt16BE(0) * 2));
  const afterFirst = 2 + (differing?.length ?? 0) * 2;
  const restLength = payload.readUInt16BE(afterFirst);
  const rest = decodeBucketList(payload.subarray(afterFirst, afterFirst + 2 + restLength * 2));
  if (differing === undefined || rest === undefined) throw new Error('malformed entries payload');
  return {
    differing,
    rest,
    entries: decodeEntries(payload.subarray(afterFirst + 2 + restLength * 2)),
  };
}

/** Reads a request body up to `max` bytes; undefined when larger. */
function readBody(stream: ServerHttp2Stream, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    stream.on('end', () => resolve(size > max ? undefined : Buffer.concat(chunks)));
    stream.on('error', () => resolve(undefined));
  });
}
