import {
  type BucketEntry,
  type BucketState,
  bucketFromJson,
  bucketToJson,
  decodeBucket,
  decodeEntries,
  EdgeError,
  encodeBucket,
  encodeBucketStates,
  encodeEntries,
  InvalidStateError,
  MAX_ID_BYTES,
  MAX_SLOTS,
  type SlotCounters,
  STATE_FORMAT_VERSION,
  sameBucket,
} from '@openclaw-edge/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { familyArb, SLOT_IDS } from './arbitraries.js';

const utf8 = new TextEncoder();
const byteLength = (s: string) => utf8.encode(s).length;

/** Short ids of well-formed Unicode, astral planes included. */
const shortIdArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...SLOT_IDS, 'n1~1.0', 'agent-42'),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }),
);

/** Any id the format carries: 1-1024 UTF-8 bytes, up to the limit exactly. */
const idArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 9, arbitrary: shortIdArb },
  { weight: 1, arbitrary: fc.constantFrom('é'.repeat(512), '😀'.repeat(256), 'x'.repeat(1024)) },
);

const noNegativeZero = (x: number) => (Object.is(x, -0) ? 0 : x);
const countArb = fc.oneof(
  fc.integer({ min: 0, max: 1_000_000 }),
  fc.double({ min: 0, max: 1e15, noNaN: true }),
);
const revisionArb = fc.oneof(
  fc.nat(10),
  fc.integer({ min: 2 ** 31, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom(2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER),
);

const fingerprintArb = fc.oneof(
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.constantFrom(0, 2 ** 31, 0xffffffff),
);

/** Any valid state, with fields drawn freely (not only reachable ones). */
const anyStateArb = (ids: fc.Arbitrary<string>): fc.Arbitrary<BucketState> =>
  fc
    .record({
      revision: revisionArb,
      params: fingerprintArb,
      epochMs: fc
        .oneof(
          fc.integer({ min: 0, max: 2e12 }),
          fc.double({ noNaN: true, noDefaultInfinity: true }),
        )
        .map(noNegativeZero),
      overflow: countArb,
      slots: fc.uniqueArray(fc.tuple(ids, countArb, countArb), {
        selector: ([id]) => id,
        maxLength: 8,
      }),
    })
    .map(({ slots, ...rest }) => ({
      ...rest,
      slots: new Map<string, SlotCounters>(
        slots.map(([id, consumed, refunded]) => [id, { consumed, refunded }]),
      ),
    }));

/** Reachable states, some moved to revisions above 2^31. */
const reachableStateArb: fc.Arbitrary<BucketState> = fc
  .tuple(familyArb({ size: 2 }), revisionArb)
  .map(([{ states }, revision]) => {
    const state = states[0] as BucketState;
    return revision > 10 ? { ...state, revision } : state;
  });

const stateArb = fc.oneof(anyStateArb(idArb), reachableStateArb);
/** States of a few hundred bytes at most, for properties that decode every prefix. */
const smallStateArb = fc.oneof(anyStateArb(shortIdArb), reachableStateArb);

const entriesArbWith = (ids: fc.Arbitrary<string>, states: fc.Arbitrary<BucketState>) =>
  fc.array(
    fc.record({
      agentId: ids,
      limit: fc.constantFrom('rpm', 'tokens_per_day', 'x'.repeat(64)),
      state: states,
    }),
    { maxLength: 5 },
  );
const entriesArb: fc.Arbitrary<BucketEntry[]> = entriesArbWith(idArb, stateArb);
const smallEntriesArb: fc.Arbitrary<BucketEntry[]> = entriesArbWith(shortIdArb, smallStateArb);

/** The first prefix length at which `decode` does not throw InvalidStateError, if any. */
function prefixNotRejected(
  bytes: Uint8Array,
  decode: (b: Uint8Array) => unknown,
): string | undefined {
  for (let n = 0; n < bytes.length; n++) {
    try {
      decode(bytes.subarray(0, n));
      return `prefix of ${n}/${bytes.length} bytes decoded`;
    } catch (error) {
      if (!(error instanceof InvalidStateError))
        return `prefix of ${n} bytes threw ${String(error)}`;
    }
  }
  return undefined;
}

function expectInvalidState(fn: () => unknown): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(InvalidStateError);
  expect((caught as InvalidStateError).code).toBe('INVALID_STATE');
}

/** Decoding may succeed or fail, but a failure is always an InvalidStateError. */
function decodesOrRejects<T>(decode: () => T): T | undefined {
  try {
    return decode();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidStateError);
    expect((error as InvalidStateError).code).toBe('INVALID_STATE');
    return undefined;
  }
}

/** A decoded state must be one the rest of the library can trust. */
function expectValidState(state: BucketState): void {
  expect(Number.isSafeInteger(state.revision) && state.revision >= 0).toBe(true);
  expect(Number.isFinite(state.epochMs)).toBe(true);
  for (const n of [
    state.overflow,
    ...[...state.slots.values()].flatMap((c) => [c.consumed, c.refunded]),
  ]) {
    expect(Number.isFinite(n) && n >= 0).toBe(true);
  }
  for (const id of state.slots.keys()) {
    expect(byteLength(id)).toBeGreaterThan(0);
    expect(byteLength(id)).toBeLessThanOrEqual(MAX_ID_BYTES);
  }
}

const json = (entries: readonly BucketEntry[]) =>
  entries.map((e) => ({ agentId: e.agentId, limit: e.limit, state: bucketToJson(e.state) }));

describe('round trips', () => {
  it('binary: a decoded bucket is the encoded one, field for field and slot for slot', () => {
    fc.assert(
      fc.property(stateArb, (state) => {
        const decoded = decodeBucket(encodeBucket(state));
        expect(bucketToJson(decoded)).toEqual(bucketToJson(state));
        expect(sameBucket(decoded, state)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('binary: entries keep their order, agent ids (any Unicode) and limit names', () => {
    fc.assert(
      fc.property(entriesArb, (entries) => {
        expect(json(decodeEntries(encodeEntries(entries)))).toEqual(json(entries));
      }),
      { numRuns: 200 },
    );
  });

  it('binary, packed: each of many states is encoded byte for byte as encodeBucket encodes it', () => {
    // Slot ids on both sides of the one-byte ASCII path (127/128 characters, a late non-ASCII one).
    const edges = ['x'.repeat(127), 'x'.repeat(128), `${'a'.repeat(40)}é`, 'agent-😀', 'n1~1.0'];
    const edgeState = (id: string, i: number): BucketState => ({
      revision: i,
      params: 7,
      epochMs: 1_700_000_000_000,
      overflow: 0,
      slots: new Map([[id, { consumed: i, refunded: 0 }]]),
    });
    fc.assert(
      fc.property(fc.array(stateArb, { maxLength: 30 }), (drawn) => {
        const states = [...drawn, ...edges.map(edgeState)];
        const { bytes, ends } = encodeBucketStates(states);
        expect(ends.length).toBe(states.length);
        let start = 0;
        states.forEach((state, i) => {
          const end = ends[i] as number;
          expect(bytes.subarray(start, end)).toEqual(encodeBucket(state));
          expect(bucketToJson(decodeBucket(bytes.subarray(start, end)))).toEqual(
            bucketToJson(state),
          );
          start = end;
        });
        expect(start).toBe(bytes.length);
      }),
      { numRuns: 100 },
    );
  });

  it('JSON: a state survives JSON.stringify and JSON.parse', () => {
    fc.assert(
      fc.property(stateArb, (state) => {
        const parsed: unknown = JSON.parse(JSON.stringify(bucketToJson(state)));
        const decoded = bucketFromJson(parsed);
        expect(bucketToJson(decoded)).toEqual(bucketToJson(state));
        expect(sameBucket(decoded, state)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('binary: a message inside a larger buffer decodes from its own offset', () => {
    const state: BucketState = {
      revision: 2 ** 40,
      params: 0xdeadbeef,
      epochMs: 1_700_000_000_123,
      overflow: 0.5,
      slots: new Map([['ü', { consumed: 3, refunded: 1.25 }]]),
    };
    const bytes = encodeBucket(state);
    const buffer = new Uint8Array(bytes.length + 11);
    buffer.set(bytes, 7);
    expect(bucketToJson(decodeBucket(buffer.subarray(7, 7 + bytes.length)))).toEqual(
      bucketToJson(state),
    );
  });

  it('binary: the version byte comes first and is STATE_FORMAT_VERSION', () => {
    expect(
      encodeBucket({ revision: 0, params: 0, epochMs: 0, overflow: 0, slots: new Map() })[0],
    ).toBe(STATE_FORMAT_VERSION);
    expect(
      bucketToJson({ revision: 0, params: 0, epochMs: 0, overflow: 0, slots: new Map() }).v,
    ).toBe(STATE_FORMAT_VERSION);
  });
});

describe('the binary decoder rejects malformed messages with INVALID_STATE', () => {
  it('an unknown version byte', () => {
    fc.assert(
      fc.property(
        stateArb,
        fc.integer({ min: 0, max: 255 }).filter((v) => v !== STATE_FORMAT_VERSION),
        (state, version) => {
          const bucket = encodeBucket(state);
          bucket[0] = version;
          expectInvalidState(() => decodeBucket(bucket));
          const entries = encodeEntries([{ agentId: 'a', limit: 'rpm', state }]);
          entries[0] = version;
          expectInvalidState(() => decodeEntries(entries));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('every strict prefix of a valid message (truncation)', () => {
    fc.assert(
      fc.property(smallStateArb, smallEntriesArb, (state, entries) => {
        expect(prefixNotRejected(encodeBucket(state), decodeBucket)).toBeUndefined();
        expect(prefixNotRejected(encodeEntries(entries), decodeEntries)).toBeUndefined();
      }),
      { numRuns: 150 },
    );
  });

  it('trailing bytes after a valid message', () => {
    fc.assert(
      fc.property(stateArb, fc.uint8Array({ minLength: 1, maxLength: 16 }), (state, extra) => {
        const bytes = encodeBucket(state);
        const longer = new Uint8Array(bytes.length + extra.length);
        longer.set(bytes);
        longer.set(extra, bytes.length);
        expectInvalidState(() => decodeBucket(longer));
        const many = encodeEntries([{ agentId: 'a', limit: 'rpm', state }]);
        const longerMany = new Uint8Array(many.length + extra.length);
        longerMany.set(many);
        longerMany.set(extra, many.length);
        expectInvalidState(() => decodeEntries(longerMany));
      }),
      { numRuns: 100 },
    );
  });

  it.each([
    ['negative overflow', { overflow: -1 }],
    ['NaN overflow', { overflow: Number.NaN }],
    ['infinite overflow', { overflow: Number.POSITIVE_INFINITY }],
    ['NaN epoch', { epochMs: Number.NaN }],
    ['infinite epoch', { epochMs: Number.NEGATIVE_INFINITY }],
    ['revision beyond 2^53', { revision: 2 ** 53 }],
    ['a fingerprint beyond 32 bits', { params: 2 ** 32 }],
    ['negative consumed', { slots: new Map([['a', { consumed: -1, refunded: 0 }]]) }],
    ['NaN consumed', { slots: new Map([['a', { consumed: Number.NaN, refunded: 0 }]]) }],
    ['negative refunded', { slots: new Map([['a', { consumed: 1, refunded: -0.5 }]]) }],
    [
      'infinite refunded',
      { slots: new Map([['a', { consumed: 1, refunded: Number.POSITIVE_INFINITY }]]) },
    ],
  ])('a state with %s', (_label, change) => {
    const state: BucketState = {
      revision: 1,
      params: 7,
      epochMs: 0,
      overflow: 0,
      slots: new Map(),
      ...change,
    };
    expectInvalidState(() => decodeBucket(encodeBucket(state)));
    expectInvalidState(() => bucketFromJson({ ...bucketToJson(state) }));
  });

  /** Header of a bucket message: version, revision 0, params 0, epoch 0, overflow 0, then `slotCount`. */
  function header(slotCount: number[]): number[] {
    return [STATE_FORMAT_VERSION, 0, 0, ...new Array(16).fill(0), ...slotCount];
  }
  const f64 = (value: number) => [...new Uint8Array(new Float64Array([value]).buffer)];

  it('a slot id that appears twice', () => {
    const slot = [1, 0x61, ...f64(1), ...f64(0)];
    const bytes = new Uint8Array([...header([2]), ...slot, ...slot]);
    expectInvalidState(() => decodeBucket(bytes));
    // The same message with distinct ids decodes, so the duplicate is what is refused.
    const distinct = new Uint8Array([...header([2]), ...slot, 1, 0x62, ...f64(1), ...f64(0)]);
    expect([...decodeBucket(distinct).slots.keys()]).toEqual(['a', 'b']);
  });

  it('more slots than MAX_SLOTS, an empty or over-long id, and an id that is not UTF-8', () => {
    const over = MAX_SLOTS + 1; // varuint 4097 = 0x81 0x20
    expect(over).toBe(0x81 - 0x80 + 0x20 * 0x80);
    expectInvalidState(() => decodeBucket(new Uint8Array(header([0x81, 0x20]))));
    // A complete message with one slot too many is refused; one at the limit is not.
    const slots = (n: number) =>
      new Map(Array.from({ length: n }, (_, i) => [`s${i}`, { consumed: 1, refunded: 0 }]));
    const state = (n: number): BucketState => ({
      revision: 0,
      params: 0,
      epochMs: 0,
      overflow: 0,
      slots: slots(n),
    });
    expect(decodeBucket(encodeBucket(state(MAX_SLOTS))).slots.size).toBe(MAX_SLOTS);
    expectInvalidState(() => decodeBucket(encodeBucket(state(MAX_SLOTS + 1))));
    expectInvalidState(() => bucketFromJson(bucketToJson(state(MAX_SLOTS + 1))));
    expectInvalidState(() =>
      decodeBucket(new Uint8Array([...header([1]), 0, ...f64(0), ...f64(0)])),
    );
    const long = [0x81, 0x08, ...new Array(MAX_ID_BYTES + 1).fill(0x61)]; // 1025 bytes
    expectInvalidState(() =>
      decodeBucket(new Uint8Array([...header([1]), ...long, ...f64(0), ...f64(0)])),
    );
    expectInvalidState(() =>
      decodeBucket(new Uint8Array([...header([1]), 1, 0xff, ...f64(0), ...f64(0)])),
    );
  });

  it('an overlong varuint', () => {
    expectInvalidState(() =>
      decodeBucket(new Uint8Array([STATE_FORMAT_VERSION, ...new Array(9).fill(0xff), 0])),
    );
    expectInvalidState(() =>
      decodeEntries(new Uint8Array([STATE_FORMAT_VERSION, ...new Array(9).fill(0x80), 0])),
    );
  });

  it('random bytes either decode to a valid state or throw InvalidStateError, nothing else', () => {
    const bytesArb = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc
        .uint8Array({ maxLength: 200 })
        .map((tail) => new Uint8Array([STATE_FORMAT_VERSION, ...tail])),
    );
    fc.assert(
      fc.property(bytesArb, (bytes) => {
        const state = decodesOrRejects(() => decodeBucket(bytes));
        if (state !== undefined) expectValidState(state);
        const entries = decodesOrRejects(() => decodeEntries(bytes));
        for (const entry of entries ?? []) expectValidState(entry.state);
      }),
      { numRuns: 1000 },
    );
  });

  it('corrupted valid messages either decode to a valid state that re-encodes faithfully, or throw InvalidStateError', () => {
    fc.assert(
      fc.property(
        stateArb,
        entriesArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        (state, entries, flips) => {
          const bucket = encodeBucket(state);
          const many = encodeEntries(entries);
          for (const [at, value] of flips) {
            bucket[at % bucket.length] = value;
            if (many.length > 0) many[at % many.length] = value;
          }
          const decoded = decodesOrRejects(() => decodeBucket(bucket));
          if (decoded !== undefined) {
            expectValidState(decoded);
            expect(bucketToJson(decodeBucket(encodeBucket(decoded)))).toEqual(
              bucketToJson(decoded),
            );
          }
          for (const entry of decodesOrRejects(() => decodeEntries(many)) ?? []) {
            expectValidState(entry.state);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('the JSON decoder rejects malformed states with INVALID_STATE', () => {
  const good = {
    v: STATE_FORMAT_VERSION,
    revision: 1,
    params: 0,
    epochMs: 0,
    overflow: 0,
    slots: [['a', 1, 0]],
  };

  it('accepts the well-formed baseline the cases below break', () => {
    expect(bucketToJson(bucketFromJson(good))).toEqual(good);
  });

  it.each([
    ['null', null],
    ['a string', '{}'],
    ['an array', [good]],
    ['no version', { ...good, v: undefined }],
    ['version 2', { ...good, v: 2 }],
    ['version "1"', { ...good, v: '1' }],
    ['no slots', { ...good, slots: undefined }],
    ['slots as an object', { ...good, slots: { a: [1, 0] } }],
    ['a slot pair', { ...good, slots: [['a', 1]] }],
    ['a slot quadruple', { ...good, slots: [['a', 1, 0, 0]] }],
    ['a numeric slot id', { ...good, slots: [[1, 1, 0]] }],
    ['an empty slot id', { ...good, slots: [['', 1, 0]] }],
    ['a string counter', { ...good, slots: [['a', '1', 0]] }],
    ['a negative counter', { ...good, slots: [['a', 1, -1]] }],
    ['a null counter', { ...good, slots: [['a', null, 0]] }],
    [
      'a duplicate slot id',
      {
        ...good,
        slots: [
          ['a', 1, 0],
          ['a', 2, 0],
        ],
      },
    ],
    ['a negative revision', { ...good, revision: -1 }],
    ['a fractional revision', { ...good, revision: 1.5 }],
    ['a string revision', { ...good, revision: '1' }],
    ['a missing fingerprint', { ...good, params: undefined }],
    ['a negative fingerprint', { ...good, params: -1 }],
    ['a fractional fingerprint', { ...good, params: 1.5 }],
    ['a fingerprint beyond 32 bits', { ...good, params: 2 ** 32 }],
    ['a null epoch', { ...good, epochMs: null }],
    ['a string epoch', { ...good, epochMs: '0' }],
    ['a negative overflow', { ...good, overflow: -0.1 }],
    ['a missing overflow', { ...good, overflow: undefined }],
    [
      'too many slots',
      { ...good, slots: Array.from({ length: MAX_SLOTS + 1 }, (_, i) => [`s${i}`, 0, 0]) },
    ],
  ])('%s', (_label, value) => {
    expectInvalidState(() => bucketFromJson(value));
  });

  it('anything JSON can hold either parses to a valid state or throws InvalidStateError', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const state = decodesOrRejects(() => bucketFromJson(value));
        if (state !== undefined) expectValidState(state);
      }),
      { numRuns: 300 },
    );
  });
});

/**
 * Contract between encoder and decoder: whatever the encoder is given either comes back from
 * the decoder unchanged, or is refused by the encoder with an EdgeError. A message the decoder
 * then refuses would be a poison pill: a peer drops the whole delta, every other agent in it too.
 */
function expectFaithfulOrRefused(entries: readonly BucketEntry[]): void {
  let bytes: Uint8Array;
  try {
    bytes = encodeEntries(entries);
  } catch (error) {
    expect(error).toBeInstanceOf(EdgeError);
    return;
  }
  expect(json(decodeEntries(bytes))).toEqual(json(entries));
}

describe('the encoder never produces a message the decoder refuses or alters', () => {
  const state: BucketState = { revision: 1, params: 0, epochMs: 0, overflow: 0, slots: new Map() };
  const other: BucketEntry = { agentId: 'well-behaved', limit: 'rpm', state };

  it('ids of exactly MAX_ID_BYTES bytes travel', () => {
    expectFaithfulOrRefused([{ agentId: 'é'.repeat(MAX_ID_BYTES / 2), limit: 'rpm', state }]);
  });

  it('an agent id over MAX_ID_BYTES UTF-8 bytes, or empty, is refused when encoding', () => {
    // 1025 ASCII bytes; 257 emoji = 1028 bytes in only 514 UTF-16 units; and the empty id.
    for (const agentId of ['x'.repeat(MAX_ID_BYTES + 1), '😀'.repeat(257), '']) {
      expectFaithfulOrRefused([other, { agentId, limit: 'rpm', state }]);
    }
  });

  it('the JSON decoder refuses a slot id the binary format could not carry', () => {
    // 600 × 'é' is 600 UTF-16 units but 1200 UTF-8 bytes: over MAX_ID_BYTES on the wire.
    expectInvalidState(() =>
      bucketFromJson({
        v: 1,
        revision: 1,
        params: 7,
        epochMs: 0,
        overflow: 0,
        slots: [['é'.repeat(600), 1, 0]],
      }),
    );
    const fits = bucketFromJson({
      v: 1,
      revision: 1,
      params: 7,
      epochMs: 0,
      overflow: 0,
      slots: [['é'.repeat(512), 1, 0]],
    });
    expectFaithfulOrRefused([other, { agentId: 'a', limit: 'rpm', state: fits }]);
  });

  it('an agent id that is not well-formed UTF-16 is refused rather than renamed', () => {
    // TextEncoder turns a lone surrogate into U+FFFD: two distinct agents would share a bucket.
    expectFaithfulOrRefused([other, { agentId: 'agent-\uD800', limit: 'rpm', state }]);
  });
});
