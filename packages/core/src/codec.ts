import { hasLoneSurrogate } from './agent-id.js';
import type { BucketState, SlotCounters } from './bucket.js';
import { InvalidStateError } from './errors.js';

/**
 * Serialised bucket state, for replication deltas and snapshots. Two encodings of one model:
 * a compact binary one (peers, snapshots) and JSON (debugging, HTTP admin). Both carry a format
 * version; a decoder refuses versions it does not know rather than guessing. Layout of binary v1
 * is in docs/crdt.md.
 */
export const STATE_FORMAT_VERSION = 1;

/** One bucket of one agent, as replication and snapshots move it. */
export interface BucketEntry {
  readonly agentId: string;
  readonly limit: string;
  readonly state: BucketState;
}

/** Longest agent id, limit name or slot id a decoder accepts, in UTF-8 bytes. */
export const MAX_ID_BYTES = 1024;
/** Most slots one bucket may carry in a decoded message. */
export const MAX_SLOTS = 4096;

/** Encodes one bucket state (binary v1). */
export function encodeBucket(state: BucketState): Uint8Array {
  const w = new Writer();
  w.u8(STATE_FORMAT_VERSION);
  writeState(w, state);
  return w.finish();
}

/** Decodes {@link encodeBucket}'s output; throws {@link InvalidStateError} on any defect. */
export function decodeBucket(bytes: Uint8Array): BucketState {
  const r = new Reader(bytes);
  r.version();
  const state = readState(r);
  r.end();
  return state;
}

/** Many bucket states in one buffer: state i is `bytes.subarray(ends[i - 1] ?? 0, ends[i])`. */
export interface PackedStates {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly ends: Uint32Array<ArrayBuffer>;
}

/**
 * Encodes many bucket states into one buffer, each exactly as {@link encodeBucket} would (so
 * each decodes with {@link decodeBucket}). Why: a snapshot slice of 1,000 buckets then costs one
 * growing buffer instead of three allocations per bucket, and a writer thread can take the
 * buffer over without a copy (BENCHMARKS.md, "Snapshot encoding (sixth session)").
 */
export function encodeBucketStates(states: readonly BucketState[]): PackedStates {
  const w = new Writer(64 * states.length + 64);
  const ends = new Uint32Array(states.length);
  for (let i = 0; i < states.length; i++) {
    w.u8(STATE_FORMAT_VERSION);
    writeState(w, states[i] as BucketState);
    ends[i] = w.length;
  }
  return { bytes: w.written(), ends };
}

/** Encodes many buckets in one message (binary v1): the shape of a replication delta. */
export function encodeEntries(entries: readonly BucketEntry[]): Uint8Array {
  const w = new Writer();
  w.u8(STATE_FORMAT_VERSION);
  w.varuint(entries.length);
  for (const entry of entries) {
    w.string(entry.agentId);
    w.string(entry.limit);
    writeState(w, entry.state);
  }
  return w.finish();
}

/** Decodes {@link encodeEntries}'s output; throws {@link InvalidStateError} on any defect. */
export function decodeEntries(bytes: Uint8Array): BucketEntry[] {
  const r = new Reader(bytes);
  r.version();
  const count = r.varuint();
  const entries: BucketEntry[] = [];
  for (let i = 0; i < count; i++) {
    const agentId = r.string();
    const limit = r.string();
    entries.push({ agentId, limit, state: readState(r) });
  }
  r.end();
  return entries;
}

/** JSON form of a bucket state; slots as `[id, consumed, refunded]` triples. */
export interface BucketStateJson {
  readonly v: number;
  readonly revision: number;
  readonly params: number;
  readonly epochMs: number;
  readonly overflow: number;
  readonly slots: readonly (readonly [string, number, number])[];
}

/** Converts a state to its JSON form. */
export function bucketToJson(state: BucketState): BucketStateJson {
  const slots: [string, number, number][] = [];
  for (const [id, c] of state.slots) slots.push([id, c.consumed, c.refunded]);
  return {
    v: STATE_FORMAT_VERSION,
    revision: state.revision,
    params: state.params,
    epochMs: state.epochMs,
    overflow: state.overflow,
    slots,
  };
}

/** Parses the JSON form (already `JSON.parse`d), validating every field. */
export function bucketFromJson(value: unknown): BucketState {
  if (value === null || typeof value !== 'object')
    throw new InvalidStateError('state must be an object');
  const o = value as Record<string, unknown>;
  if (o.v !== STATE_FORMAT_VERSION) {
    throw new InvalidStateError(
      `unknown state format version ${String(o.v)} (expected ${STATE_FORMAT_VERSION})`,
    );
  }
  if (!Array.isArray(o.slots) || o.slots.length > MAX_SLOTS) {
    throw new InvalidStateError(`slots must be a list of at most ${MAX_SLOTS} entries`);
  }
  const slots = new Map<string, SlotCounters>();
  for (const slot of o.slots as unknown[]) {
    if (!Array.isArray(slot) || slot.length !== 3 || typeof slot[0] !== 'string') {
      throw new InvalidStateError('each slot must be [id, consumed, refunded]');
    }
    addSlot(slots, slot[0], slot[1], slot[2]);
  }
  return checkedState(o.revision, o.params, o.epochMs, o.overflow, slots);
}

function writeState(w: Writer, state: BucketState): void {
  w.varuint(state.revision);
  w.varuint(state.params);
  w.f64(state.epochMs);
  w.f64(state.overflow);
  w.varuint(state.slots.size);
  for (const [id, c] of state.slots) {
    w.string(id);
    w.f64(c.consumed);
    w.f64(c.refunded);
  }
}

function readState(r: Reader): BucketState {
  const revision = r.varuint();
  const params = r.varuint();
  const epochMs = r.f64();
  const overflow = r.f64();
  const count = r.varuint();
  if (count > MAX_SLOTS)
    throw new InvalidStateError(`bucket has ${count} slots, more than ${MAX_SLOTS}`);
  const slots = new Map<string, SlotCounters>();
  for (let i = 0; i < count; i++) addSlot(slots, r.string(), r.f64(), r.f64());
  return checkedState(revision, params, epochMs, overflow, slots);
}

function addSlot(
  slots: Map<string, SlotCounters>,
  id: string,
  consumed: unknown,
  refunded: unknown,
): void {
  checkId(id, 'slot id');
  if (!isCount(consumed) || !isCount(refunded)) {
    throw new InvalidStateError(`slot ${JSON.stringify(id)}: counters must be finite numbers >= 0`);
  }
  if (slots.has(id)) throw new InvalidStateError(`slot ${JSON.stringify(id)} appears twice`);
  slots.set(id, { consumed, refunded });
}

function checkedState(
  revision: unknown,
  params: unknown,
  epochMs: unknown,
  overflow: unknown,
  slots: ReadonlyMap<string, SlotCounters>,
): BucketState {
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) {
    throw new InvalidStateError('revision must be a non-negative integer');
  }
  if (
    typeof params !== 'number' ||
    !Number.isInteger(params) ||
    params < 0 ||
    params > 0xffffffff
  ) {
    throw new InvalidStateError('params must be a 32-bit unsigned fingerprint');
  }
  if (typeof epochMs !== 'number' || !Number.isFinite(epochMs)) {
    throw new InvalidStateError('epochMs must be a finite number');
  }
  if (!isCount(overflow)) throw new InvalidStateError('overflow must be a finite number >= 0');
  return { revision, params, epochMs, overflow, slots };
}

/**
 * An id must survive the wire unchanged: 1-1024 UTF-8 bytes and well-formed Unicode (a lone
 * surrogate would be encoded as U+FFFD, silently merging two ids). Checked on both ends, so the
 * encoder never writes a message the decoder refuses.
 */
function checkId(id: string, what: string, bytes = encoder.encode(id).length): void {
  if (bytes === 0 || bytes > MAX_ID_BYTES) {
    throw new InvalidStateError(`${what} must be 1-${MAX_ID_BYTES} UTF-8 bytes (got ${bytes})`);
  }
  if (hasLoneSurrogate(id)) throw new InvalidStateError(`${what} is not well-formed Unicode`);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Growable little-endian byte writer. */
class Writer {
  private buf: Uint8Array<ArrayBuffer>;
  private view: DataView;
  private pos = 0;

  constructor(size = 256) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  get length(): number {
    return this.pos;
  }

  u8(value: number): void {
    this.reserve(1);
    this.buf[this.pos++] = value;
  }

  varuint(value: number): void {
    // LEB128 over safe integers; division instead of bit ops so values above 2^31 survive.
    this.reserve(8);
    let v = value;
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  f64(value: number): void {
    this.reserve(8);
    this.view.setFloat64(this.pos, value, true);
    this.pos += 8;
  }

  string(value: string): void {
    if (this.shortAscii(value)) return;
    const bytes = encoder.encode(value);
    checkId(value, 'id', bytes.length);
    this.varuint(bytes.length);
    this.reserve(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /**
   * Writes a 1-127 character ASCII string (every slot id, and most agent ids and limit names)
   * byte by byte, as `string` would; false, with nothing written, for any other. Why: the
   * TextEncoder round trip was the largest cost of encoding a snapshot slice.
   */
  private shortAscii(value: string): boolean {
    const length = value.length;
    if (length === 0 || length > 0x7f) return false;
    this.reserve(length + 1);
    const buf = this.buf;
    const start = this.pos + 1;
    for (let i = 0; i < length; i++) {
      const code = value.charCodeAt(i);
      if (code > 0x7f) return false;
      buf[start + i] = code;
    }
    buf[this.pos] = length;
    this.pos = start + length;
    return true;
  }

  /** A copy of what was written, in a buffer of its own size. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  /** What was written, as a view of the (larger) buffer written into: no copy. */
  written(): Uint8Array<ArrayBuffer> {
    return this.buf.subarray(0, this.pos);
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
}

/** Bounds-checked reader; every overrun is an {@link InvalidStateError}, never a RangeError. */
class Reader {
  private readonly view: DataView;
  private pos = 0;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  version(): void {
    const v = this.u8();
    if (v !== STATE_FORMAT_VERSION) {
      throw new InvalidStateError(
        `unknown state format version ${v} (expected ${STATE_FORMAT_VERSION})`,
      );
    }
  }

  u8(): number {
    this.need(1);
    return this.bytes[this.pos++] as number;
  }

  varuint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const byte = this.u8();
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(value)) break;
        return value;
      }
      scale *= 0x80;
    }
    throw new InvalidStateError('malformed length or revision field');
  }

  f64(): number {
    this.need(8);
    const value = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return value;
  }

  string(): string {
    const length = this.varuint();
    if (length === 0 || length > MAX_ID_BYTES)
      throw new InvalidStateError(`id length ${length} outside 1-${MAX_ID_BYTES}`);
    this.need(length);
    const start = this.pos;
    this.pos += length;
    try {
      return decoder.decode(this.bytes.subarray(start, this.pos));
    } catch {
      throw new InvalidStateError('id is not valid UTF-8');
    }
  }

  end(): void {
    if (this.pos !== this.bytes.length) {
      throw new InvalidStateError(
        `${this.bytes.length - this.pos} unexpected bytes after the state`,
      );
    }
  }

  private need(n: number): void {
    if (this.pos + n > this.bytes.length) throw new InvalidStateError('message is truncated');
  }
}
