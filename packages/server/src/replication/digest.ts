import type { BucketEntry } from '@openclaw-edge/core';
import type { Limiter } from '@openclaw-edge/engine';

/**
 * Anti-entropy digests (docs/replication.md, "Anti-entropy"). Agents fall into
 * {@link DIGEST_BUCKETS} digest buckets by a hash of their id; a digest is, per digest bucket,
 * the XOR of its agents' state hashes (two 32-bit lanes). Two replicas compare digests (8 KiB)
 * and exchange the agents of the buckets that differ, so a repair moves what differs, not the
 * whole state.
 *
 * A state hash covers each bucket's version (revision, params, epoch) and its slot counters, but
 * not its overflow: overflow is raised by every replica on its own as time passes (normalising a
 * full bucket), so two replicas with the same counters hold different overflow most of the time
 * and would never compare equal. Each replica derives it again from the counters; deltas and
 * repairs still carry it, and merging keeps the larger.
 */
export const DIGEST_BUCKETS = 1024;

/** The digest bucket of an agent id (FNV-1a of its UTF-16 code units). */
export function digestBucketOf(agentId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < agentId.length; i++) {
    h ^= agentId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % DIGEST_BUCKETS;
}

/**
 * State replicated beside the limiter's (the fleet's budget counters): its own agents and
 * entries, carried in the same digests, repairs and pulls.
 */
export interface SideState {
  agents(): Iterable<string>;
  entriesOfAgent(agentId: string): BucketEntry[];
}

/** Agents hashed before a digest yields the event loop (a few ms of work). */
const DIGEST_SLICE = 1_000;
/** Agent ids scanned for their digest bucket before a repair yields the event loop. */
const SCAN_SLICE = 20_000;

/** A run of digest buckets: `count` buckets from `from`. */
export interface DigestRange {
  readonly from: number;
  readonly count: number;
}

/** Every digest bucket: what a pull compares. */
export const FULL_RANGE: DigestRange = { from: 0, count: DIGEST_BUCKETS };

/** A digest of the agents in `range`: two lanes per digest bucket of the range. */
export interface Digest extends DigestRange {
  readonly lanes: Uint32Array;
}

/**
 * Digest of the agents the limiter tracks whose digest bucket is in `range`. Computed in slices
 * with the event loop free between them (it visits every agent id, and hashes the state of those
 * in range: about 2 s for the full range at a million agents), so requests are never held back by
 * more than one slice. A digest read over an interval is still sound for anti-entropy: each
 * agent's part is its state at some moment after the start, and the answer's time is taken at
 * the start.
 */
export async function computeDigest(
  limiter: Limiter,
  now: () => number,
  range: DigestRange = FULL_RANGE,
  side?: SideState,
): Promise<Digest> {
  const lanes = new Uint32Array(range.count * 2);
  const end = range.from + range.count;
  let n = 0;
  let at = now();
  for (const agentId of limiter.agents()) {
    const b = digestBucketOf(agentId);
    if (b < range.from || b >= end) continue;
    const i = (b - range.from) * 2;
    const [h1, h2] = hashEntries(agentId, limiter.exportAgent(agentId, at));
    lanes[i] = (lanes[i] as number) ^ h1;
    lanes[i + 1] = (lanes[i + 1] as number) ^ h2;
    if (++n % DIGEST_SLICE === 0) {
      await new Promise((resolve) => setImmediate(resolve));
      at = now();
    }
  }
  // An agent's hash is the XOR of its entries' hashes: side entries fold in on their own.
  if (side !== undefined) {
    for (const agentId of [...side.agents()]) {
      const b = digestBucketOf(agentId);
      if (b < range.from || b >= end) continue;
      const i = (b - range.from) * 2;
      const [h1, h2] = hashEntries(agentId, side.entriesOfAgent(agentId));
      lanes[i] = (lanes[i] as number) ^ h1;
      lanes[i + 1] = (lanes[i + 1] as number) ^ h2;
      if (++n % DIGEST_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return { from: range.from, count: range.count, lanes };
}

/** Indices of the digest buckets where two digests of the same range differ. */
export function differingBuckets(a: Digest, b: Digest): number[] {
  if (a.from !== b.from || a.count !== b.count) throw new Error('digests of different ranges');
  const out: number[] = [];
  for (let i = 0; i < a.count; i++) {
    if (a.lanes[i * 2] !== b.lanes[i * 2] || a.lanes[i * 2 + 1] !== b.lanes[i * 2 + 1]) {
      out.push(a.from + i);
    }
  }
  return out;
}

/**
 * Full state of the agents in the given digest buckets, at most about `maxEntries` entries (an
 * agent's entries are never split), read after the call (the scan yields the event loop). Returns the entries and the buckets left out for lack of
 * room, to ask for next.
 */
export async function entriesOfBuckets(
  limiter: Limiter,
  buckets: readonly number[],
  now: () => number,
  maxEntries: number,
  side?: SideState,
): Promise<{ entries: BucketEntry[]; rest: number[] }> {
  const wanted = new Set(buckets);
  const byBucket = new Map<number, string[]>();
  let n = 0;
  for (const agentId of limiter.agents()) {
    if (++n % SCAN_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
    const b = digestBucketOf(agentId);
    if (!wanted.has(b)) continue;
    const list = byBucket.get(b);
    if (list === undefined) byBucket.set(b, [agentId]);
    else list.push(agentId);
  }
  if (side !== undefined) {
    const seen = new Set<string>();
    for (const list of byBucket.values()) for (const id of list) seen.add(id);
    for (const agentId of [...side.agents()]) {
      const b = digestBucketOf(agentId);
      if (!wanted.has(b) || seen.has(agentId)) continue;
      const list = byBucket.get(b);
      if (list === undefined) byBucket.set(b, [agentId]);
      else list.push(agentId);
    }
  }
  const entries: BucketEntry[] = [];
  const rest: number[] = [];
  for (const b of buckets) {
    const agents = byBucket.get(b) ?? [];
    if (entries.length > 0 && entries.length + agents.length > maxEntries) {
      rest.push(b);
      continue;
    }
    const nowMs = now();
    for (const agentId of agents) {
      entries.push(...limiter.exportAgent(agentId, nowMs));
      if (side !== undefined) entries.push(...side.entriesOfAgent(agentId));
    }
  }
  return { entries, rest };
}

/** Encodes a digest as a frame payload: u16 from, u16 count, then big-endian u32 lane pairs. */
export function encodeDigest(digest: Digest): Buffer {
  const out = Buffer.allocUnsafe(4 + digest.lanes.length * 4);
  out.writeUInt16BE(digest.from, 0);
  out.writeUInt16BE(digest.count, 2);
  for (let i = 0; i < digest.lanes.length; i++) {
    out.writeUInt32BE(digest.lanes[i] as number, 4 + i * 4);
  }
  return out;
}

/** Decodes {@link encodeDigest}; undefined when the payload is not a digest. */
export function decodeDigest(payload: Buffer): Digest | undefined {
  if (payload.length < 4) return undefined;
  const from = payload.readUInt16BE(0);
  const count = payload.readUInt16BE(2);
  if (count === 0 || from + count > DIGEST_BUCKETS || payload.length !== 4 + count * 8) {
    return undefined;
  }
  const lanes = new Uint32Array(count * 2);
  for (let i = 0; i < lanes.length; i++) lanes[i] = payload.readUInt32BE(4 + i * 4);
  return { from, count, lanes };
}

/** Encodes a list of digest bucket indices (a `want` payload). */
export function encodeBucketList(buckets: readonly number[]): Buffer {
  const out = Buffer.allocUnsafe(2 + buckets.length * 2);
  out.writeUInt16BE(buckets.length, 0);
  for (let i = 0; i < buckets.length; i++) out.writeUInt16BE(buckets[i] as number, 2 + i * 2);
  return out;
}

/** Decodes {@link encodeBucketList}; undefined when malformed or out of range. */
export function decodeBucketList(payload: Buffer): number[] | undefined {
  if (payload.length < 2) return undefined;
  const n = payload.readUInt16BE(0);
  if (n > DIGEST_BUCKETS || payload.length !== 2 + n * 2) return undefined;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const b = payload.readUInt16BE(2 + i * 2);
    if (b >= DIGEST_BUCKETS) return undefined;
    out.push(b);
  }
  return out;
}

/** Order-independent hash of one agent's bucket states, overflow left out (see above). */
function hashEntries(agentId: string, entries: readonly BucketEntry[]): [number, number] {
  let h1 = 0;
  let h2 = 0;
  for (const e of entries) {
    const s = e.state;
    const head = `${agentId}\u0000${e.limit}\u0000${s.revision}\u0000${s.params}\u0000${s.epochMs}`;
    let a = lane(head, 0x9e3779b9);
    let b = lane(head, 0x85ebca6b);
    // Slots in any order: sum their hashes (mod 2^32) into the head's.
    for (const [slot, c] of s.slots) {
      const text = `${slot}\u0000${c.consumed}\u0000${c.refunded}`;
      a = (a + lane(text, 0xc2b2ae35)) >>> 0;
      b = (b + lane(text, 0x27d4eb2f)) >>> 0;
    }
    h1 ^= a;
    h2 ^= b;
  }
  return [h1 >>> 0, h2 >>> 0];
}

/** A seeded 32-bit string hash (murmur3-style mixing of UTF-16 code units). */
function lane(text: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), 0x5bd1e995);
    h ^= h >>> 15;
  }
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
