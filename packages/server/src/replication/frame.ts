import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The one message format replicas exchange, over the mesh (HTTP/2 bodies) and through Redis
 * (pub/sub messages): a header naming the sender and where the message sits in its stream, a
 * payload (bucket entries in core's binary codec, or a digest), and an HMAC-SHA256 over all of
 * it with the fleet's shared secret. Nobody without the secret can inject state; a frame that is
 * truncated, oversized, of an unknown version or badly signed is refused as a whole.
 *
 * ```
 * magic "OCE" · version u8 · kind u8 · node id (u8 length + ASCII) · incarnation f64
 * · seq f64 · sentAtMs f64 · payload length u32 · payload · HMAC-SHA256 (32 bytes)
 * ```
 *
 * Numbers are big-endian. `seq` numbers a sender's deltas (one stream per incarnation, starting
 * at 1); other kinds carry 0. `sentAtMs` is the sender's clock when it built the frame.
 */
export const FRAME_VERSION = 1;

export const FrameKind = {
  /** Buckets the sender changed since its previous delta; empty = heartbeat. */
  delta: 1,
  /** Who is at this address (answer to a hello request). */
  hello: 2,
  /** Digest of the sender's state: hash per digest bucket. */
  digest: 3,
  /** Bucket entries answering a digest or a repair request. */
  entries: 4,
  /** Digest buckets the sender asks for (payload: u16 indices). */
  want: 5,
  /** Runtime policy overrides (payload: JSON records, replication/overrides.ts). */
  overrides: 6,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

const MAGIC = [0x4f, 0x43, 0x45] as const;
const MAC_BYTES = 32;
const NODE_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

/** A decoded, authenticated frame. */
export interface Frame {
  readonly kind: FrameKind;
  readonly nodeId: string;
  readonly incarnation: number;
  readonly seq: number;
  readonly sentAtMs: number;
  readonly payload: Buffer;
}

/** Why a frame was refused; `code` is stable (metrics, logs, HTTP problem codes). */
export class FrameError extends Error {
  constructor(
    readonly code: 'frame_malformed' | 'frame_unauthenticated' | 'frame_too_large',
    message: string,
  ) {
    super(message);
    this.name = 'FrameError';
  }
}

/** Signs and checks frames with one shared secret. */
export class FrameCodec {
  private readonly key: Buffer;

  constructor(
    secret: string,
    /** Largest whole frame accepted, in bytes. */
    readonly maxBytes: number,
  ) {
    this.key = Buffer.from(secret, 'utf8');
  }

  encode(frame: Omit<Frame, 'payload'> & { readonly payload: Uint8Array }): Buffer {
    const id = Buffer.from(frame.nodeId, 'ascii');
    const headerBytes = 3 + 1 + 1 + 1 + id.length + 8 + 8 + 8 + 4;
    const out = Buffer.allocUnsafe(headerBytes + frame.payload.length + MAC_BYTES);
    let at = 0;
    for (const b of MAGIC) out[at++] = b;
    out[at++] = FRAME_VERSION;
    out[at++] = frame.kind;
    out[at++] = id.length;
    at += id.copy(out, at);
    at = out.writeDoubleBE(frame.incarnation, at);
    at = out.writeDoubleBE(frame.seq, at);
    at = out.writeDoubleBE(frame.sentAtMs, at);
    at = out.writeUInt32BE(frame.payload.length, at);
    out.set(frame.payload, at);
    at += frame.payload.length;
    this.mac(out.subarray(0, at)).copy(out, at);
    return out;
  }

  /** Decodes and authenticates; throws {@link FrameError}. */
  decode(bytes: Uint8Array): Frame {
    const buf = Buffer.isBuffer(bytes)
      ? bytes
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    if (buf.length > this.maxBytes) {
      throw new FrameError('frame_too_large', `frame of ${buf.length} bytes > ${this.maxBytes}`);
    }
    if (buf.length < 3 + 3 + 24 + 4 + MAC_BYTES || MAGIC.some((b, i) => buf[i] !== b)) {
      throw new FrameError('frame_malformed', 'not a replication frame');
    }
    // Authenticate before reading anything else: an unsigned frame is noise, whatever it says.
    const body = buf.subarray(0, buf.length - MAC_BYTES);
    const mac = buf.subarray(buf.length - MAC_BYTES);
    if (!timingSafeEqual(this.mac(body), mac)) {
      throw new FrameError('frame_unauthenticated', 'bad frame signature (wrong secret?)');
    }
    if (buf[3] !== FRAME_VERSION) {
      throw new FrameError('frame_malformed', `unknown frame version ${buf[3]}`);
    }
    const kind = buf[4] as number;
    if (kind < FrameKind.delta || kind > FrameKind.overrides) {
      throw new FrameError('frame_malformed', `unknown frame kind ${kind}`);
    }
    const idLength = buf[5] as number;
    let at = 6;
    const fixed = idLength + 28;
    if (at + fixed > body.length) throw new FrameError('frame_malformed', 'truncated header');
    const nodeId = buf.toString('ascii', at, at + idLength);
    at += idLength;
    if (!NODE_ID.test(nodeId)) throw new FrameError('frame_malformed', 'bad node id');
    const incarnation = buf.readDoubleBE(at);
    const seq = buf.readDoubleBE(at + 8);
    const sentAtMs = buf.readDoubleBE(at + 16);
    const length = buf.readUInt32BE(at + 24);
    at += 28;
    if (
      !Number.isSafeInteger(incarnation) ||
      !Number.isSafeInteger(seq) ||
      seq < 0 ||
      !Number.isFinite(sentAtMs)
    ) {
      throw new FrameError('frame_malformed', 'bad header numbers');
    }
    if (at + length !== body.length) {
      throw new FrameError('frame_malformed', 'payload length does not match the frame');
    }
    return {
      kind: kind as FrameKind,
      nodeId,
      incarnation,
      seq,
      sentAtMs,
      payload: buf.subarray(at, at + length),
    };
  }

  private mac(bytes: Buffer): Buffer {
    return createHmac('sha256', this.key).update(bytes).digest();
  }
}
