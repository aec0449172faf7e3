import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { definePolicy } from '@openclaw-edge/core';
import { Limiter } from '@openclaw-edge/engine';
import { ApiKeys, buildApp, type RawCheckStats } from '@openclaw-edge/server';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { edgeRuntime } from './harness.js';

// `POST /v1/check` has a fast path on node:http in front of Fastify (src/http/fast-check.ts).
// These tests hold it to the Fastify route: two apps built alike (same policy, same clock, same
// keys), one answering over a real loopback socket (the fast path), one through `inject`, which
// always runs Fastify's own handler. Every response must be the same, byte for byte in the body
// and header for header, and the fast path must really have answered (Fastify's own hooks never
// saw the request) whenever it could.

const KEY = 'fast-check-test-key';
const NARROW_KEY = 'narrow-key';
const NOW = 1_800_000_000_000;

function buildEdge(fastCheckStats?: RawCheckStats): FastifyInstance {
  const limiter = new Limiter({
    nodeId: 'n',
    incarnation: 1,
    defaultPolicy: definePolicy([
      { name: 'burst', capacity: 3, refill: 1, per: 'second' },
      { name: 'tokens', resource: 'tokens', capacity: 1000, refill: 1000, per: 'minute' },
    ]),
  });
  const digest = (key: string) => createHash('sha256').update(key).digest('hex');
  const keys = new ApiKeys([
    { name: 'full', sha256: digest(KEY), scopes: ['check'] },
    { name: 'narrow', sha256: digest(NARROW_KEY), scopes: ['check'], agents: ['team-*'] },
  ]);
  const runtime = edgeRuntime(limiter, {
    now: () => NOW,
    apiKeys: () => keys,
    bodyLimitBytes: 1024,
  });
  return buildApp(runtime, {
    logger: false,
    version: 'test',
    ...(fastCheckStats === undefined ? {} : { fastCheckStats }),
  });
}

interface Case {
  readonly name: string;
  readonly body: string;
  readonly headers?: Record<string, string>;
  /** Whether the fast path may answer it (false: it must hand the request to Fastify). */
  readonly fast: boolean;
}

const json = (value: unknown) => JSON.stringify(value);
const CASES: readonly Case[] = [
  { name: 'allowed', body: json({ agent_id: 'a' }), fast: true },
  { name: 'cost by resource', body: json({ agent_id: 'b', cost: { tokens: 900 } }), fast: true },
  { name: 'named limits', body: json({ agent_id: 'b', limits: ['burst'] }), fast: true },
  { name: 'unknown limit', body: json({ agent_id: 'b', limits: ['nope'] }), fast: true },
  { name: 'never fits (422)', body: json({ agent_id: 'c', cost: 5 }), fast: true },
  { name: 'drain 1', body: json({ agent_id: 'd', cost: 3 }), fast: true },
  { name: 'denied (429)', body: json({ agent_id: 'd' }), fast: true },
  { name: 'unknown field', body: json({ agent_id: 'a', extra: 1 }), fast: true },
  { name: 'wrong type', body: json({ agent_id: 5 }), fast: true },
  { name: 'negative cost', body: json({ agent_id: 'a', cost: -1 }), fast: true },
  { name: 'control character', body: json({ agent_id: 'a\u0001' }), fast: true },
  { name: 'unicode id', body: json({ agent_id: 'агент-🦀' }), fast: true },
  // Bodies that look like the plain `{"agent_id":"..."}` the fast path reads without a parser:
  { name: 'escaped quote', body: '{"agent_id":"a\\"b"}', fast: true },
  { name: 'unicode escape (the agent "a")', body: '{"agent_id":"\\u0061"}', fast: true },
  { name: 'escaped backslash at the end', body: '{"agent_id":"a\\\\"}', fast: true },
  { name: 'spacing', body: '{ "agent_id" : "a" }', fast: true },
  { name: 'trailing newline', body: '{"agent_id":"a"}\n', fast: true },
  { name: 'raw tab in the id', body: '{"agent_id":"a\tb"}', fast: true },
  { name: 'empty id', body: '{"agent_id":""}', fast: true },
  { name: 'one-character id', body: '{"agent_id":"z"}', fast: true },
  { name: 'no closing brace', body: '{"agent_id":"a"', fast: true },
  { name: 'second field', body: '{"agent_id":"a","cost":2}', fast: true },
  { name: 'other key', body: '{"agent_ids":"a"}', fast: true },
  { name: 'malformed JSON', body: '{"agent_id":', fast: true },
  { name: 'empty body', body: '', fast: true },
  { name: 'not an object', body: '[1,2]', fast: true },
  { name: 'proto poisoning', body: '{"agent_id":"a","__proto__":{"x":1}}', fast: true },
  {
    name: 'constructor poisoning',
    body: '{"agent_id":"a","cost":{"constructor":{"prototype":{"x":1}}}}',
    fast: true,
  },
  {
    name: 'charset parameter',
    body: json({ agent_id: 'a' }),
    headers: { 'content-type': 'application/json; charset=utf-8' },
    fast: true,
  },
  {
    name: 'agent the key may not act for',
    body: json({ agent_id: 'a' }),
    headers: { authorization: `Bearer ${NARROW_KEY}` },
    fast: true,
  },
  {
    name: 'agent the key may act for',
    body: json({ agent_id: 'team-1' }),
    headers: { authorization: `Bearer ${NARROW_KEY}` },
    fast: true,
  },
  {
    name: 'key as x-api-key',
    body: json({ agent_id: 'e' }),
    headers: { authorization: '', 'x-api-key': KEY },
    fast: true,
  },
  // Handed to Fastify before the body is read:
  {
    name: 'wrong key (401)',
    body: json({ agent_id: 'a' }),
    headers: { authorization: 'Bearer wrong' },
    fast: false,
  },
  {
    name: 'no key (401)',
    body: json({ agent_id: 'a' }),
    headers: { authorization: '' },
    fast: false,
  },
  {
    name: 'text/plain (415)',
    body: json({ agent_id: 'a' }),
    headers: { 'content-type': 'text/plain' },
    fast: false,
  },
  {
    name: 'other charset',
    body: json({ agent_id: 'a' }),
    headers: { 'content-type': 'application/json; charset=latin1' },
    fast: false,
  },
  { name: 'body too large (413)', body: json({ agent_id: 'x'.repeat(2000) }), fast: false },
];

/** Response headers that differ between any two responses (time) or by transport. */
const TRANSPORT_HEADERS = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding']);

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

function comparable(headers: Iterable<[string, string]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of headers) {
    if (!TRANSPORT_HEADERS.has(name.toLowerCase())) out[name.toLowerCase()] = value;
  }
  return out;
}

function requestHeaders(c: Case, index: number): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    authorization: `Bearer ${KEY}`,
    'x-request-id': `case-${index}`,
    ...c.headers,
  };
  for (const [k, v] of Object.entries(headers)) if (v === '') delete headers[k];
  return headers;
}

let fast: FastifyInstance;
let reference: FastifyInstance;
let url: string;
let fastifySaw = 0;
const stats: RawCheckStats = { answered: 0, handedOff: 0 };

beforeAll(async () => {
  fast = buildEdge(stats);
  fast.addHook('onResponse', (_request, _reply, done) => {
    fastifySaw++;
    done();
  });
  url = await fast.listen({ host: '127.0.0.1', port: 0 });
  reference = buildEdge();
  await reference.ready();
});

afterAll(async () => {
  await fast.close();
  await reference.close();
});

describe('the POST /v1/check fast path', () => {
  it('answers every request exactly as the Fastify route does', async () => {
    const statuses = new Set<number>();
    for (const [index, c] of CASES.entries()) {
      const headers = requestHeaders(c, index);
      const before = fastifySaw;
      const onConnection = stats.answered;
      const res = await fetch(`${url}/v1/check`, { method: 'POST', headers, body: c.body });
      const viaSocket: Answer = {
        status: res.status,
        headers: comparable(res.headers),
        body: await res.text(),
      };
      const ref = await reference.inject({
        method: 'POST',
        url: '/v1/check',
        headers,
        payload: c.body,
      });
      const viaFastify: Answer = {
        status: ref.statusCode,
        headers: comparable(Object.entries(ref.headers).map(([k, v]) => [k, String(v)])),
        body: ref.body,
      };
      expect({ case: c.name, ...viaSocket }).toEqual({ case: c.name, ...viaFastify });
      // A request sent whole, on a connection of its own or one only checks used, is answered
      // on the connection itself; one Fastify must answer is handed over.
      expect({
        case: c.name,
        fastPath: fastifySaw === before,
        onConnection: stats.answered === onConnection + 1,
      }).toEqual({ case: c.name, fastPath: c.fast, onConnection: c.fast });
      statuses.add(viaSocket.status);
    }
    // The comparison only means something if the cases reach every kind of answer.
    expect([...statuses].sort()).toEqual([200, 400, 401, 403, 413, 415, 422, 429]);
  });

  it('reads a body that arrives in pieces, a character split between them', async () => {
    const body = Buffer.from(json({ agent_id: 'агент-split' }));
    const cut = body.indexOf(Buffer.from('г')) + 1; // inside the two bytes of 'г'
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    await once(socket, 'connect');
    const before = fastifySaw;
    socket.write(
      `POST /v1/check HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
        `authorization: Bearer ${KEY}\r\nx-request-id: split\r\n` +
        `content-length: ${body.length}\r\nconnection: close\r\n\r\n`,
    );
    socket.write(body.subarray(0, cut));
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.end(body.subarray(cut));
    const chunks: Buffer[] = [];
    for await (const chunk of socket) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const ref = await reference.inject({
      method: 'POST',
      url: '/v1/check',
      headers: requestHeaders({ name: 'split', body: '', fast: true }, 0),
      payload: body,
    });
    expect(raw.startsWith('HTTP/1.1 200 ')).toBe(true);
    expect(raw.slice(raw.indexOf('\r\n\r\n') + 4)).toBe(ref.body);
    expect(JSON.parse(ref.body)).toMatchObject({ agent_id: 'агент-split', allowed: true });
    expect(fastifySaw).toBe(before);
  });

  it('leaves a query string and every other route to Fastify', async () => {
    const before = fastifySaw;
    const withQuery = await fetch(`${url}/v1/check?x=1`, {
      method: 'POST',
      headers: requestHeaders({ name: 'q', body: '', fast: false }, 99),
      body: json({ agent_id: 'q' }),
    });
    expect(withQuery.status).toBe(200);
    const agent = await fetch(`${url}/v1/agents/q`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    expect(agent.status).toBe(200);
    expect(fastifySaw - before).toBe(2);
  });
});
