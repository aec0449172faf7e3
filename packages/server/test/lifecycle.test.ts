import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, call, type Edge, eventually, scratchDir, startEdge, writeConfig } from './harness.js';

const running: Edge[] = [];
const scratches: (() => void)[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop('SIGKILL')));
  for (const c of scratches.splice(0)) c();
});

function setup(yaml: (dataDir: string) => string) {
  const s = scratchDir();
  scratches.push(s.cleanup);
  const path = writeConfig(s.dir, yaml(join(s.dir, 'data')));
  return { dir: s.dir, path };
}

async function start(configPath: string): Promise<Edge> {
  const edge = await startEdge({ configPath });
  running.push(edge);
  return edge;
}

const remaining = async (edge: Edge, agent: string) =>
  ((await call(edge.url, 'GET', `/v1/agents/${agent}`)).body.limits as { remaining: number }[])[0]
    ?.remaining;

describe('config reload', () => {
  it('SIGHUP applies a good file and keeps serving the old config when the new one is bad', async () => {
    const cfg = setup(
      (data) => `data_dir: ${data}\nlimits: [{ name: r, capacity: 10, refill: 1, per: hour }]\n`,
    );
    const edge = await start(cfg.path);
    await call(edge.url, 'POST', '/v1/check', { agent_id: 'a', cost: 4 });

    writeFileSync(cfg.path, 'limits: [{ name: r, capacity: -3, refill: 1, per: hour }]\n');
    edge.proc.kill('SIGHUP');
    const rejected = await edge.waitForLog((l) =>
      String(l.msg).startsWith('config reload rejected'),
    );
    expect(JSON.stringify(rejected.issues)).toContain('limits[0].capacity');
    expect(await remaining(edge, 'a')).toBe(6);
    expect((await call(edge.url, 'POST', '/v1/check', { agent_id: 'a', cost: 7 })).status).toBe(
      429,
    );

    writeFileSync(
      cfg.path,
      `data_dir: ${join(cfg.dir, 'data')}\nlimits: [{ name: r, capacity: 100, refill: 1, per: hour }]\n`,
    );
    edge.proc.kill('SIGHUP');
    await edge.waitForLog((l) => l.msg === 'config reloaded');
    // The 4 tokens spent stay spent under the bigger limit.
    expect(await remaining(edge, 'a')).toBe(96);
  });

  it('a change to the file is picked up without a signal', async () => {
    const cfg = setup(
      (data) => `data_dir: ${data}\nlimits: [{ name: r, capacity: 10, refill: 1, per: hour }]\n`,
    );
    const edge = await start(cfg.path);
    writeFileSync(
      cfg.path,
      `data_dir: ${join(cfg.dir, 'data')}\nlimits: [{ name: r, capacity: 20, refill: 1, per: hour }]\n`,
    );
    await eventually(async () => (await remaining(edge, 'fresh')) === 20);
  });
});

describe('durability across restarts', () => {
  it('a graceful restart restores every bucket and override', async () => {
    const cfg = setup(
      (data) => `data_dir: ${data}\nlimits: [{ name: r, capacity: 10, refill: 1, per: hour }]\n`,
    );
    let edge = await start(cfg.path);
    await call(edge.url, 'POST', '/v1/check', { agent_id: 'a', cost: 7 });
    await call(edge.url, 'PUT', '/v1/agents/b/policy', {
      limits: [{ name: 'r', capacity: 50, refill: 1, per: 'hour' }],
    });
    await call(edge.url, 'POST', '/v1/check', { agent_id: 'b', cost: 20 });
    expect(await edge.stop('SIGTERM')).toBe(0);
    // The whole shutdown ran: the process did not just run out of work halfway through it.
    expect(edge.logs.map((l) => l.msg)).toContain('stopped');

    edge = await start(cfg.path);
    const restored = await edge.waitForLog((l) => l.msg === 'state restored');
    expect(restored).toMatchObject({ agents: 2, buckets: 2, overrides: 1 });
    expect(await remaining(edge, 'a')).toBe(3);
    expect(await remaining(edge, 'b')).toBe(30);
    expect((await call(edge.url, 'POST', '/v1/check', { agent_id: 'a', cost: 4 })).status).toBe(
      429,
    );
  });

  it('kill -9 loses at most the last snapshot interval', async () => {
    const cfg = setup(
      (data) =>
        `data_dir: ${data}\nsnapshot: { interval_ms: 200 }\nlimits: [{ name: r, capacity: 10, refill: 1, per: hour }]\n`,
    );
    let edge = await start(cfg.path);
    await call(edge.url, 'POST', '/v1/check', { agent_id: 'a', cost: 6 });
    // Wait past two intervals, so the charge is on disk, then crash without any shutdown.
    await new Promise((r) => setTimeout(r, 600));
    expect(await edge.stop('SIGKILL')).toBeNull();
    edge = await start(cfg.path);
    expect(await remaining(edge, 'a')).toBe(4);
  });

  it('a limit changed while the service was down is rebased, not reset', async () => {
    const cfg = setup(
      (data) => `data_dir: ${data}\nlimits: [{ name: r, capacity: 10, refill: 1, per: hour }]\n`,
    );
    let edge = await start(cfg.path);
    await call(edge.url, 'POST', '/v1/check', { agent_id: 'a', cost: 6 });
    expect(await edge.stop('SIGTERM')).toBe(0);
    writeFileSync(
      cfg.path,
      `data_dir: ${join(cfg.dir, 'data')}\nlimits: [{ name: r, capacity: 40, refill: 1, per: hour }]\n`,
    );
    edge = await start(cfg.path);
    expect(await edge.waitForLog((l) => l.msg === 'state restored')).toMatchObject({ rebased: 1 });
    expect(await remaining(edge, 'a')).toBe(34);
  });

  it('SIGTERM lets an in-flight request finish, turns new ones away, then exits 0', async () => {
    const cfg = setup((data) => `data_dir: ${data}\n`);
    const edge = await start(cfg.path);
    const { port } = new URL(edge.url);
    // A request whose headers reached the server before the signal, and whose body ends after it.
    const body = JSON.stringify({ agent_id: 'in-flight' });
    const answer = new Promise<{ status: number; connection: string | undefined }>(
      (resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: '/v1/check',
            headers: { 'content-type': 'application/json', 'content-length': body.length },
          },
          (res) => {
            res.resume();
            res.on('end', () =>
              resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }),
            );
          },
        );
        req.on('error', reject);
        req.write(body.slice(0, 5));
        setTimeout(async () => {
          edge.proc.kill('SIGTERM');
          await edge.waitForLog((l) => l.msg === 'stopping');
          // Readiness is already off, and a new request is refused while the old one is pending.
          const late = await call(edge.url, 'GET', '/v1/agents/x').catch(() => ({ status: 0 }));
          expect([0, 503]).toContain(late.status);
          req.end(body.slice(5));
        }, 300);
      },
    );
    // Answered, and told to close the connection rather than keep it alive into the shutdown.
    expect(await answer).toEqual({ status: 200, connection: 'close' });
    expect(await edge.stop()).toBe(0);
  });
});

describe('the CLI', () => {
  const run = (args: string[], input?: string) =>
    spawnSync(process.execPath, [...CLI, ...args], { encoding: 'utf8', input, timeout: 30_000 });

  it('config validate names the field and the line of every problem, exit 1', () => {
    const cfg = setup(
      () =>
        `server:\n  port: 8080\nlimits:\n  - name: r\n    capacity: 0\n    refill: 1\n    per: fortnight\nagents:\n  - { match: x, tier: nope }\n`,
    );
    const r = run(['config', 'validate', cfg.path]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('line 5: limits[0].capacity');
    expect(r.stderr).toContain('line 7: limits[0].per');
    const ok = setup((data) => `data_dir: ${data}\n`);
    const good = run(['config', 'validate', ok.path]);
    expect(good.status).toBe(0);
    expect(good.stdout).toContain('valid');
  });

  it('config print shows the effective config with env overrides', () => {
    const r = spawnSync(process.execPath, [...CLI, 'config', 'print'], {
      encoding: 'utf8',
      env: { ...process.env, PORT: '9999' },
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/port: 9999/);
    expect(r.stdout).toMatch(/name: requests/);
  });

  it('unknown commands and flags exit 2 with usage', () => {
    expect(run(['frobnicate']).status).toBe(2);
    const r = run(['serve', '--nope']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('Usage');
  });

  it('a port already in use is a clear message and exit 1, not a stack trace', async () => {
    const cfg = setup((data) => `data_dir: ${data}\n`);
    const edge = await start(cfg.path);
    const { port } = new URL(edge.url);
    const r = spawnSync(process.execPath, [...CLI, 'serve', '--config', cfg.path], {
      encoding: 'utf8',
      env: { ...process.env, PORT: port },
      timeout: 30_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('EADDRINUSE');
    expect(r.stderr).toContain('PORT');
  });

  it('key hash prints the sha256 that config expects', () => {
    const r = run(['key', 'hash'], 'secret-key\n');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(createHash('sha256').update('secret-key').digest('hex'));
  });
});
