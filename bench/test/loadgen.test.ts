/**
 * The open-loop load generator (bench/loadgen) against real HTTP servers on loopback: it sends
 * exactly the scheduled requests with the bodies given, counts statuses, charges a stalled
 * server for the requests it held back, and refuses bad arguments. Needs a C compiler (`cc`):
 * without one the suite skips, except under CI=true, where it fails.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLoadgen, loadgenArgs, runLoadgen } from '../loadgen/loadgen.js';

const dir = mkdtempSync(join(tmpdir(), 'loadgen-test-'));
const binary = buildLoadgen(dir);
if (binary === undefined) {
  const reason = 'no C compiler (cc) to build bench/loadgen';
  if (process.env.CI === 'true') throw new Error(`${reason}; CI needs it`);
  console.log(`loadgen suite skipped: ${reason}`);
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function listen(
  handle: (req: IncomingMessage, body: string, res: ServerResponse) => void,
): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString('utf8');
    });
    req.on('end', () => handle(req, body, res));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}/v1/check` };
}

describe.skipIf(binary === undefined)('loadgen', () => {
  const bin = binary as string;
  let closeAll: (() => void)[] = [];
  beforeAll(() => {
    closeAll = [];
  });
  afterAll(() => {
    for (const close of closeAll) close();
  });

  it('sends every scheduled request with its body in turn and counts statuses', async () => {
    const seen: string[] = [];
    const { server, url } = await listen((req, body, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers['content-type']} ${body}`);
      const n = (JSON.parse(body) as { n: number }).n;
      const answer = '{"ok":true}';
      // loadgen reads Content-Length framing only (no chunked bodies).
      res.writeHead(n === 0 ? 429 : 200, { 'content-length': answer.length });
      res.end(answer);
    });
    closeAll.push(() => server.close());
    const bodies = Array.from({ length: 10 }, (_, n) => JSON.stringify({ n }));
    const { result } = await runLoadgen(
      bin,
      { url, rate: 1000, durationS: 1, warmupS: 0.5, connections: 4, bodies },
      dir,
    );

    expect(result.scheduled).toBe(1000);
    expect(result.completed).toBe(1000);
    expect([result.errors, result.unfinished, result.unsent]).toEqual([0, 0, 0]);
    // Body k % 10 for request k: 100 of the measured 1,000 carry n = 0.
    expect(result.statuses).toEqual({ '200': 900, '429': 100 });
    expect(result.non2xx).toBe(100);
    // Warm-up included, the server saw 1,500 POSTs, each body as many times.
    expect(seen).toHaveLength(1500);
    for (const body of bodies) {
      expect(seen.filter((s) => s === `POST /v1/check application/json ${body}`)).toHaveLength(150);
    }
    const l = result.latency_ms;
    expect(l.p50).toBeGreaterThan(0);
    expect(l.p50).toBeLessThanOrEqual(l.p99);
    expect(l.p99).toBeLessThanOrEqual(l.max);
  });

  it('counts latency from when a request was due, so a stall is charged for the queue behind it', async () => {
    let count = 0;
    const { server, url } = await listen((_req, _body, res) => {
      count++;
      const answer = () => res.end('{}');
      // One connection: while request 20 hangs for 300 ms, the next ~60 due requests wait.
      if (count === 20) setTimeout(answer, 300);
      else answer();
    });
    closeAll.push(() => server.close());
    const { result } = await runLoadgen(
      bin,
      { url, rate: 200, durationS: 1, connections: 1, bodies: ['{}'] },
      dir,
    );

    expect(result.completed).toBe(200);
    expect(result.latency_ms.max).toBeGreaterThanOrEqual(300);
    // About 40 of the 200 requests were due 100 ms or more before they could be sent...
    expect(result.latency_ms.p90).toBeGreaterThanOrEqual(100);
    expect(result.send_lag_ms.max).toBeGreaterThanOrEqual(250);
    // ...while only the stalled one took long once written.
    expect(result.service_ms.max).toBeGreaterThanOrEqual(300);
    expect(result.service_ms.p90).toBeLessThan(50);
  });

  it('opens a new connection when the server closes one, and loses no request to it', async () => {
    let count = 0;
    const { server, url } = await listen((_req, _body, res) => {
      count++;
      // Every 25th answer closes its connection (as a keep-alive limit would).
      if (count % 25 === 0) res.setHeader('connection', 'close');
      res.end('{}');
    });
    closeAll.push(() => server.close());
    const { result } = await runLoadgen(
      bin,
      { url, rate: 500, durationS: 1, connections: 4, bodies: ['{}'] },
      dir,
    );
    expect([result.completed, result.errors, result.unfinished]).toEqual([500, 0, 0]);
    expect(result.reconnects).toBe(20);
  });

  it('spreads poisson arrivals over the window and still sends exactly the schedule', async () => {
    const { server, url } = await listen((_req, _body, res) => res.end('{}'));
    closeAll.push(() => server.close());
    const { result } = await runLoadgen(
      bin,
      { url, rate: 500, durationS: 1, connections: 2, arrivals: 'poisson', seed: 7 },
      dir,
    );
    expect(result.arrivals).toBe('poisson');
    expect([result.scheduled, result.completed, result.errors]).toEqual([500, 500, 0]);
  });

  it('at rate 0 runs a closed loop: one request per connection in flight, each sent on the answer', async () => {
    let inFlight = 0;
    let most = 0;
    let answered = 0;
    const { server, url } = await listen((_req, _body, res) => {
      inFlight++;
      most = Math.max(most, inFlight);
      // A 2 ms service time: at most connections ÷ 2 ms requests per second in a closed loop.
      setTimeout(() => {
        inFlight--;
        answered++;
        res.writeHead(200, { 'content-length': 2 });
        res.end('ok');
      }, 2);
    });
    closeAll.push(() => server.close());
    const { result } = await runLoadgen(
      bin,
      { url, rate: 0, durationS: 1, warmupS: 0.3, connections: 4, bodies: ['{"n":1}'] },
      dir,
    );
    expect(result.arrivals).toBe('closed');
    expect(most).toBe(4);
    expect([result.errors, result.unfinished, result.unsent, result.non2xx]).toEqual([0, 0, 0, 0]);
    expect(result.completed).toBe(result.scheduled);
    // Warm-up answers are not counted; each connection waits for its answer before the next.
    expect(result.completed).toBeLessThan(answered);
    expect(result.achieved_rps).toBeGreaterThan(200);
    expect(result.achieved_rps).toBeLessThanOrEqual(4 / 0.002);
    expect(result.service_ms.p50).toBeGreaterThanOrEqual(2);
    // Latency counts from the write: nothing is due before it is sent.
    expect(result.send_lag_ms.max).toBe(0);
  });

  it('refuses bad arguments with a message and exit code 2, an unreachable target with 1', () => {
    const run = (args: string[]) => spawnSync(bin, args, { encoding: 'utf8' });
    const url = 'http://127.0.0.1:1/';
    const cases: [string[], RegExp][] = [
      [['--rate', '100', '--duration', '1'], /--url is required/],
      [['--url', url, '--rate', '-1', '--duration', '1'], /--rate must be 0 \(closed loop\) or in/],
      [
        ['--url', url, '--rate', '0', '--duration', '1', '--arrivals', 'poisson'],
        /--arrivals poisson needs a --rate/,
      ],
      [['--url', url, '--rate', 'fast', '--duration', '1'], /fast is not a number/],
      [
        ['--url', url, '--rate', '100', '--duration', '1', '--bogus', 'x'],
        /unknown option --bogus/,
      ],
      [['--url', 'http://localhost:80/', '--rate', '100', '--duration', '1'], /--url must be/],
      [
        ['--url', url, '--rate', '100', '--duration', '1', '--arrivals', 'bursty'],
        /--arrivals must be uniform or poisson/,
      ],
      [
        ['--url', url, '--rate', '100', '--duration', '1', '--bodies', join(dir, 'none')],
        /cannot read/,
      ],
      [['--url', url, '--rate', '1000000', '--duration', '600'], /over 100 million requests/],
    ];
    for (const [args, message] of cases) {
      const r = run(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const unreachable = run(loadgenArgs({ url, rate: 100, durationS: 1 }, dir));
    expect(unreachable.status).toBe(1);
    expect(unreachable.stderr).toMatch(/cannot connect to 127\.0\.0\.1:1/);
  });
});
