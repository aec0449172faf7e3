import { definePolicy } from '@openclaw-edge/core';
import { Limiter } from '@openclaw-edge/engine';
import { buildApp } from '@openclaw-edge/server';
import { describe, expect, it } from 'vitest';
import { edgeRuntime } from './harness.js';

// A client on another host cannot be produced on this machine's loopback, so this test
// injects requests with a non-loopback remote address into the real app in process.
function app() {
  const limiter = new Limiter({
    nodeId: 'n',
    incarnation: 1,
    defaultPolicy: definePolicy([{ name: 'r', capacity: 5, refill: 1, per: 'second' }]),
  });
  return buildApp(edgeRuntime(limiter), { logger: false, version: 'test' });
}

describe('with no API key configured', () => {
  it('serves loopback clients', async () => {
    const res = await app().inject({
      method: 'POST',
      url: '/v1/check',
      payload: { agent_id: 'a' },
      remoteAddress: '127.0.0.1',
    });
    expect(res.statusCode).toBe(200);
  });

  it('refuses clients from other hosts with LOOPBACK_ONLY', async () => {
    for (const remoteAddress of ['10.1.2.3', '192.168.0.7', '::ffff:10.0.0.1', '2001:db8::1']) {
      const res = await app().inject({
        method: 'POST',
        url: '/v1/check',
        payload: { agent_id: 'a' },
        remoteAddress,
      });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ code: 'LOOPBACK_ONLY' });
    }
  });
});
