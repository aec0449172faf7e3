import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, type Edge, scratchDir, startEdge, writeConfig } from './harness.js';

const hash = (key: string) => createHash('sha256').update(key).digest('hex');
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

let edge: Edge;
const scratch = scratchDir();

beforeAll(async () => {
  const config = writeConfig(
    scratch.dir,
    `
data_dir: ${scratch.dir}/data
api_keys:
  - { name: admin, sha256: ${hash('admin-secret')}, scopes: [check, admin] }
  - { name: checker, sha256: ${hash('check-secret')}, scopes: [check] }
  - { name: team-a, sha256: ${hash('team-a-secret')}, scopes: [check, admin], agents: ["team-a-*"] }
`,
  );
  edge = await startEdge({ configPath: config });
});

afterAll(async () => {
  await edge.stop();
  scratch.cleanup();
});

describe('API keys', () => {
  it('refuses requests without a key, or with a wrong one, before reading the body', async () => {
    const none = await call(edge.url, 'POST', '/v1/check', { agent_id: 'x' });
    expect(none.status).toBe(401);
    expect(none.body.code).toBe('UNAUTHENTICATED');
    const wrong = await call(edge.url, 'POST', '/v1/check', { agent_id: 'x' }, bearer('nope'));
    expect(wrong.status).toBe(401);
    // Even a malformed body is answered 401, not 400: strangers learn nothing about the API.
    expect((await call(edge.url, 'POST', '/v1/check', '{oops', {})).status).toBe(401);
  });

  it('accepts a valid key by Authorization or X-API-Key', async () => {
    expect(
      (await call(edge.url, 'POST', '/v1/check', { agent_id: 'x' }, bearer('check-secret'))).status,
    ).toBe(200);
    expect(
      (
        await call(
          edge.url,
          'POST',
          '/v1/check',
          { agent_id: 'x' },
          { 'x-api-key': 'check-secret' },
        )
      ).status,
    ).toBe(200);
  });

  it('enforces scopes', async () => {
    const body = { limits: [{ name: 'requests', capacity: 5, refill: 5, per: 'second' }] };
    const denied = await call(edge.url, 'PUT', '/v1/agents/x/policy', body, bearer('check-secret'));
    expect(denied.status).toBe(403);
    expect(denied.body.code).toBe('FORBIDDEN');
    expect(
      (await call(edge.url, 'PUT', '/v1/agents/x/policy', body, bearer('admin-secret'))).status,
    ).toBe(200);
  });

  it('restricts a key to its agents, per item in a batch too', async () => {
    const key = bearer('team-a-secret');
    expect((await call(edge.url, 'POST', '/v1/check', { agent_id: 'team-a-1' }, key)).status).toBe(
      200,
    );
    const other = await call(edge.url, 'POST', '/v1/check', { agent_id: 'team-b-1' }, key);
    expect(other.status).toBe(403);
    expect((await call(edge.url, 'GET', '/v1/agents/team-b-1', undefined, key)).status).toBe(403);
    const batch = await call(
      edge.url,
      'POST',
      '/v1/check/batch',
      { checks: [{ agent_id: 'team-a-2' }, { agent_id: 'team-b-2' }] },
      key,
    );
    expect((batch.body.results as Record<string, unknown>[]).map((r) => r.allowed)).toEqual([
      true,
      false,
    ]);
    expect((batch.body.results as Record<string, unknown>[])[1]).toMatchObject({
      error: { code: 'FORBIDDEN' },
    });
  });

  it('health endpoints stay open for probes', async () => {
    expect((await call(edge.url, 'GET', '/healthz')).status).toBe(200);
    expect((await call(edge.url, 'GET', '/readyz')).status).toBe(200);
  });
});
