import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { definePolicy } from '@openclaw-edge/core';
import { Limiter } from '@openclaw-edge/engine';
import { ApiKeys, buildApp, type RawCheckStats } from '@openclaw-edge/server';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { RawCheckConnections, readRequest } from '../src/http/raw-check.js';
import { edgeRuntime } from './harness.js';

// The connection layer in front of node:http (src/http/raw-check.ts): what it reads itself, what
// it hands over, and that a connection it owns behaves like one node:http owns (order of
// pipelined answers, response bytes, idle timeout, shutdown). Real sockets on loopback throughout.

const KEY = 'raw-check-test-key';
const LIMITS = { bodyLimitBytes: 1024, maxHeadBytes: 16 * 1024, maxHeaders: 2000 };
const TIMEOUTS = { headersTimeoutMs: 60_000 };

function head(lines: readonly string[], body = '{"agent_id":"a"}'): Buffer {
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`, 'latin1');
}

const CHECK_LINES = [
  'POST /v1/check HTTP/1.1',
  'Host: x',
  'Content-Type: application/json',
  'Content-Length: 16',
];

describe('readRequest', () => {
  it('reads a whole check: its body, where it ends, and the headers the check needs', () => {
    const request = head([
      ...CHECK_LINES,
      'AUTHORIZATION:   Bearer k  ',
      'X-Request-Id: r-1',
      'Connection: Keep-Alive',
      'Accept: */*',
    ]);
    const next = Buffer.concat([request, Buffer.from('GET / HTTP/1.1\r\n')]);
    const read = readRequest(next, 0, LIMITS);
    expect(read?.end).toBe(request.length);
    expect(read?.request.body.toString()).toBe('{"agent_id":"a"}');
    expect(read?.request.headers).toEqual({
      'content-type': 'application/json',
      authorization: 'Bearer k',
      'x-request-id': 'r-1',
    });
    // The same request again at an offset (pipelining).
    const twice = Buffer.concat([request, request]);
    expect(readRequest(twice, request.length, LIMITS)?.end).toBe(twice.length);
    // Spaces after the length are node:http's too; exactly as many lines as it keeps.
    const spaced = head([...CHECK_LINES.slice(0, 3), 'Content-Length: 16  ']);
    expect(readRequest(spaced, 0, LIMITS)?.end).toBe(spaced.length);
    const full = head([
      ...CHECK_LINES,
      ...Array.from({ length: LIMITS.maxHeaders - 4 }, () => 'a:'),
    ]);
    expect(readRequest(full, 0, LIMITS)?.end).toBe(full.length);
  });

  const refused: [string, Buffer][] = [
    ['another route', head(['POST /v1/check/batch HTTP/1.1', ...CHECK_LINES.slice(1)])],
    ['a query string', head(['POST /v1/check?x=1 HTTP/1.1', ...CHECK_LINES.slice(1)])],
    ['HTTP/1.0', head(['POST /v1/check HTTP/1.0', ...CHECK_LINES.slice(1)])],
    ['lower-case method', head(['post /v1/check HTTP/1.1', ...CHECK_LINES.slice(1)])],
    ['no Host', head(CHECK_LINES.filter((l) => !l.startsWith('Host')))],
    ['two Hosts', head([...CHECK_LINES, 'Host: y'])],
    ['no Content-Length', head(CHECK_LINES.slice(0, 3))],
    ['two Content-Lengths', head([...CHECK_LINES, 'Content-Length: 16'])],
    ['a signed Content-Length', head([...CHECK_LINES.slice(0, 3), 'Content-Length: +16'])],
    ['an empty Content-Length', head([...CHECK_LINES.slice(0, 3), 'Content-Length: '])],
    ['a body over the limit', head([...CHECK_LINES.slice(0, 3), 'Content-Length: 1025'])],
    ['Transfer-Encoding', head([...CHECK_LINES, 'Transfer-Encoding: chunked'])],
    ['Expect', head([...CHECK_LINES, 'Expect: 100-continue'])],
    ['Upgrade', head([...CHECK_LINES, 'Upgrade: websocket'])],
    ['Connection: close', head([...CHECK_LINES, 'Connection: close'])],
    ['Proxy-Connection: close', head([...CHECK_LINES, 'Proxy-Connection: close'])],
    ['a tab after the Content-Length', head([...CHECK_LINES.slice(0, 3), 'Content-Length: 16\t'])],
    [
      'more header lines than node:http keeps',
      head([...CHECK_LINES, ...Array.from({ length: LIMITS.maxHeaders }, () => 'a:')]),
    ],
    ['a space before the colon', head([...CHECK_LINES, 'X-Thing : 1'])],
    ['a folded header line', head([...CHECK_LINES, 'X-Thing: 1', ' continued'])],
    ['a bare LF inside a value', head([...CHECK_LINES, 'X-Thing: a\nb: c'])],
    ['a bare CR inside a value', head([...CHECK_LINES, 'X-Thing: a\rb'])],
    ['a control character in a value', head([...CHECK_LINES, 'X-Thing: a\u0001'])],
    ['a line without a colon', head([...CHECK_LINES, 'X-Thing'])],
    ['two Authorization headers', head([...CHECK_LINES, 'Authorization: a', 'authorization: b'])],
    ['a body not all there yet', head(CHECK_LINES, '{"agent_id":')],
    ['a head not all there yet', Buffer.from(`${CHECK_LINES.join('\r\n')}\r\n`)],
    ['a head over the limit', head([...CHECK_LINES, `X-Big: ${'b'.repeat(LIMITS.maxHeadBytes)}`])],
  ];
  it.each(refused)('leaves %s to node:http', (_name, bytes) => {
    expect(readRequest(bytes, 0, LIMITS)).toBeUndefined();
  });
});

// --- The layer inside the real app --------------------------------------------------------------

const NOW = 1_800_000_000_000;
const apps: FastifyInstance[] = [];

async function startApp(): Promise<{ app: FastifyInstance; port: number; stats: RawCheckStats }> {
  const limiter = new Limiter({
    nodeId: 'n',
    incarnation: 1,
    defaultPolicy: definePolicy([{ name: 'burst', capacity: 3, refill: 1, per: 'second' }]),
  });
  const keys = new ApiKeys([
    { name: 'k', sha256: createHash('sha256').update(KEY).digest('hex'), scopes: ['check'] },
  ]);
  const runtime = edgeRuntime(limiter, {
    now: () => NOW,
    apiKeys: () => keys,
    bodyLimitBytes: 1024,
  });
  const stats: RawCheckStats = { answered: 0, handedOff: 0 };
  const app = buildApp(runtime, { logger: false, version: 'test', fastCheckStats: stats });
  apps.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, port: (app.server.address() as AddressInfo).port, stats };
}

const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const app of apps.splice(0)) await app.close();
});

function check(agent: string, extra: readonly string[] = [], cost?: number): string {
  const body = JSON.stringify(cost === undefined ? { agent_id: agent } : { agent_id: agent, cost });
  return [
    'POST /v1/check HTTP/1.1',
    'Host: x',
    'Content-Type: application/json',
    `Authorization: Bearer ${KEY}`,
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...extra,
    '',
    body,
  ].join('\r\n');
}

/**
 * Reads responses (Content-Length bodies) from `socket` until `count` arrived, the socket
 * closed or 5 s passed; leaves it open.
 */
function responses(socket: Socket, count: number): Promise<string[]> {
  let text = '';
  const out: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${out.length} of ${count} responses`)), 5000);
    socket.once('close', () => clearTimeout(timer));
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      for (;;) {
        const end = text.indexOf('\r\n\r\n');
        if (end < 0) break;
        const length = Number(/\r\ncontent-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
        if (Buffer.byteLength(text.slice(end + 4)) < length) break;
        const total = end + 4 + length;
        out.push(text.slice(0, total));
        text = text.slice(total);
      }
      if (out.length >= count) {
        clearTimeout(timer);
        socket.removeListener('data', onData);
        resolve(out);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => resolve(out));
  });
}

async function open(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  await once(socket, 'connect');
  return socket;
}

const status = (response: string | undefined) => Number(response?.split(' ')[1]);
const remaining = (response: string | undefined) =>
  JSON.parse(response?.slice(response.indexOf('\r\n\r\n') + 4) ?? '{}').limits?.[0]?.remaining;

describe('checks answered on the connection', () => {
  it('answers pipelined checks in order, and hands the connection over at the first other request', async () => {
    const { port, stats } = await startApp();
    const socket = await open(port);
    socket.write(
      check('p') +
        check('p') +
        `GET /v1/agents/p HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n\r\n` +
        check('p') +
        check('p'),
    );
    const answers = await responses(socket, 5);
    socket.destroy();
    expect(answers.map(status)).toEqual([200, 200, 200, 200, 429]);
    // Two checks on the connection, then node:http (the agent read, a check on its fast path,
    // and a denial once the burst of 3 is spent), in the order they were sent.
    expect(remaining(answers[0])).toBe(2);
    expect(remaining(answers[1])).toBe(1);
    expect(JSON.parse(answers[2]!.slice(answers[2]!.indexOf('\r\n\r\n') + 4))).toMatchObject({
      agent_id: 'p',
    });
    expect(remaining(answers[3])).toBe(0);
    expect(stats).toEqual({ answered: 2, handedOff: 1 });
  });

  it('writes the same bytes as node:http, but for the date', async () => {
    const { port, stats } = await startApp();
    // A check that can never fit (cost 5 > capacity 3) spends nothing, so both answers agree.
    const request = check('same', ['X-Request-Id: same-id'], 5);
    const whole = await open(port);
    whole.write(request);
    const [onConnection] = await responses(whole, 1);
    whole.destroy();
    // Split inside the head: the connection layer hands it to node:http's fast path.
    const split = await open(port);
    split.write(request.slice(0, 20));
    await new Promise((resolve) => setTimeout(resolve, 30));
    split.write(request.slice(20));
    const [viaNode] = await responses(split, 1);
    split.destroy();
    expect(stats).toEqual({ answered: 1, handedOff: 1 });
    const undated = (r: string | undefined) => r?.replace(/\r\nDate: [^\r]*/, '');
    expect(status(onConnection)).toBe(422);
    expect(undated(onConnection)).toBe(undated(viaNode));
    expect(onConnection).toMatch(/\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\r\n/);
  });

  it('leaves a request that is both chunked and sized to node:http, which refuses it', async () => {
    const { port, stats } = await startApp();
    const socket = await open(port);
    socket.write(check('s', ['Transfer-Encoding: chunked']));
    const [answer] = await responses(socket, 1);
    expect(status(answer)).toBe(400);
    await once(socket, 'close');
    expect(stats).toEqual({ answered: 0, handedOff: 1 });
  });

  it('closes the connections it owns when the server closes all of them', async () => {
    const { app, port } = await startApp();
    const socket = await open(port);
    socket.write(check('all'));
    await responses(socket, 1);
    const closed = once(socket, 'close');
    app.server.closeAllConnections();
    await closed;
  });

  it('does not hold up shutdown: an idle connection it owns is closed', async () => {
    const { app, port, stats } = await startApp();
    const socket = await open(port);
    socket.write(check('idle'));
    await responses(socket, 1);
    expect(stats.answered).toBe(1);
    const closed = once(socket, 'close');
    await app.close();
    await closed;
  });
});

/** A loopback server whose every connection goes to `connections`. */
async function listenWith(
  connections: RawCheckConnections,
): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => connections.take(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

describe('RawCheckConnections', () => {
  it('closes a connection idle for the keep-alive timeout, and answers until then', async () => {
    const connections = new RawCheckConnections({
      handler: {
        answer: () => ({ status: 200, headers: { 'content-length': '2' }, payload: 'ok' }),
      },
      handOff: (socket) => socket.destroy(),
      ...LIMITS,
      ...TIMEOUTS,
      keepAliveTimeoutMs: 150,
    });
    const { server, port } = await listenWith(connections);
    try {
      const socket = await open(port);
      const started = Date.now();
      socket.write(head(CHECK_LINES));
      const [answer] = await responses(socket, 1);
      expect(answer).toMatch(
        /^HTTP\/1\.1 200 OK\r\ncontent-length: 2\r\n.*Keep-Alive: timeout=0\r\n\r\nok$/s,
      );
      await once(socket, 'close');
      expect(Date.now() - started).toBeGreaterThanOrEqual(140);
      expect(connections.stats).toEqual({ answered: 1, handedOff: 0 });
    } finally {
      server.close();
    }
  });

  it('closes a connection whose handler throws, and goes on serving the others', async () => {
    let calls = 0;
    const connections = new RawCheckConnections({
      handler: {
        answer: () => {
          calls++;
          if (calls === 2) throw new Error('a fault of ours');
          return { status: 200, headers: { 'content-length': '2' }, payload: 'ok' };
        },
      },
      handOff: (socket) => socket.destroy(),
      ...LIMITS,
      ...TIMEOUTS,
      keepAliveTimeoutMs: 5000,
    });
    const { server, port } = await listenWith(connections);
    try {
      // Two pipelined requests, the second one's handler throws: the first is answered (its
      // tokens are spent), then the connection closes.
      const first = await open(port);
      first.write(Buffer.concat([head(CHECK_LINES), head(CHECK_LINES)]));
      expect(await responses(first, 2)).toHaveLength(1);
      const second = await open(port);
      second.write(head(CHECK_LINES));
      const [answer] = await responses(second, 1);
      expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n.*\r\n\r\nok$/s);
    } finally {
      server.close();
    }
  });

  it('hands over the unread bytes intact, after the answers it wrote', async () => {
    const seen: string[] = [];
    const http = createHttpServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.end('from node');
    });
    const connections = new RawCheckConnections({
      handler: {
        answer: () => ({ status: 200, headers: { 'content-length': '4' }, payload: 'mine' }),
      },
      handOff: (socket) => http.emit('connection', socket),
      ...LIMITS,
      ...TIMEOUTS,
      keepAliveTimeoutMs: 5000,
    });
    const { server, port } = await listenWith(connections);
    try {
      const socket = await open(port);
      socket.write(
        Buffer.concat([head(CHECK_LINES), Buffer.from('GET /other HTTP/1.1\r\nHost: x\r\n\r\n')]),
      );
      const answers = await responses(socket, 2);
      socket.destroy();
      expect(answers.map((a) => a.slice(a.indexOf('\r\n\r\n') + 4))).toEqual(['mine', 'from node']);
      expect(seen).toEqual(['GET /other']);
    } finally {
      server.close();
      http.close();
    }
  });
});
