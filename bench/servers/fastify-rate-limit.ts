/**
 * Peer (c) of the HTTP benchmark: Fastify with @fastify/rate-limit (its in-memory LRU store, a
 * fixed window), keyed by the body's agent_id. The route-level config runs the limiter as a
 * preHandler hook, after the body is parsed and validated, so the key can come from the body.
 * The LRU holds every agent of the workload (10,000), so no key is evicted and recounted.
 * Body validated and response serialised with schemas, like our service.
 */
import rateLimit from '@fastify/rate-limit';
import Fastify from 'fastify';
import {
  type CheckBody,
  checkBodySchema,
  decision,
  decisionSchema,
  GENEROUS_CAPACITY,
  GENEROUS_WINDOW_MS,
  serve,
} from './common.js';

const app = Fastify({ logger: false });
await app.register(rateLimit, { global: false, cache: 20_000 });
app.post(
  '/v1/check',
  {
    schema: { body: checkBodySchema, response: { 200: decisionSchema } },
    config: {
      rateLimit: {
        max: GENEROUS_CAPACITY,
        timeWindow: GENEROUS_WINDOW_MS,
        hook: 'preHandler',
        keyGenerator: (request) => (request.body as CheckBody).agent_id,
      },
    },
  },
  async (request, reply) => {
    // The plugin has already set its x-ratelimit-* headers; the body repeats them.
    const remaining = Number(reply.getHeader('x-ratelimit-remaining') ?? 0);
    const resetS = Number(reply.getHeader('x-ratelimit-reset') ?? 0);
    return decision((request.body as CheckBody).agent_id, remaining, resetS * 1000);
  },
);
await serve(app);
