/**
 * Peer (d) of the HTTP benchmark: Fastify with rate-limiter-flexible's `RateLimiterRedis` on
 * the local Redis (REDIS_URL, default redis://127.0.0.1:6379) through ioredis, keyed by the
 * body's agent_id, `consume` awaited on every request (a fixed window kept in Redis by a Lua
 * script). Keys live under a prefix of their own (RLF_KEY_PREFIX) and expire with the window.
 * Body validated and response serialised with schemas, like our service.
 */
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import {
  type CheckBody,
  checkBodySchema,
  decision,
  decisionSchema,
  GENEROUS_CAPACITY,
  GENEROUS_WINDOW_MS,
  serve,
} from './common.js';

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
  maxRetriesPerRequest: 1,
  enableOfflineQueue: true,
});
await redis.ping();

const limiter = new RateLimiterRedis({
  storeClient: redis,
  keyPrefix: process.env.RLF_KEY_PREFIX ?? `bench-http-${process.pid}`,
  points: GENEROUS_CAPACITY,
  duration: GENEROUS_WINDOW_MS / 1000,
});

const app = Fastify({ logger: false });
app.post(
  '/v1/check',
  {
    schema: {
      body: checkBodySchema,
      response: {
        200: decisionSchema,
        429: {
          type: 'object',
          properties: { agent_id: { type: 'string' }, allowed: { type: 'boolean' } },
        },
      },
    },
  },
  async (request, reply) => {
    const agentId = (request.body as CheckBody).agent_id;
    try {
      const res = await limiter.consume(agentId, 1);
      reply.header('x-ratelimit-remaining', res.remainingPoints);
      return decision(agentId, res.remainingPoints, res.msBeforeNext);
    } catch (error) {
      if (!(error instanceof RateLimiterRes)) throw error;
      reply.header('retry-after', Math.ceil(error.msBeforeNext / 1000));
      return reply.status(429).send({ agent_id: agentId, allowed: false });
    }
  },
);
await serve(app, async () => {
  await redis.quit();
});
