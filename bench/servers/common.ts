/**
 * Shared plumbing of the peer servers of the HTTP benchmark (`bench/http.bench.ts`). Each peer is
 * its own process: it listens on 127.0.0.1 and the port in PORT (0 picks a free one), prints one
 * JSON line `{"msg":"ready","address":"http://127.0.0.1:PORT"}` on stdout once listening (the
 * same line our service logs), and on SIGTERM closes the server and exits 0.
 */
import type { FastifyInstance } from 'fastify';

/** The limit every peer enforces: generous, so nearly all of the load is allowed. */
export const LIMIT_NAME = 'bench';
export const GENEROUS_CAPACITY = 1e9;
export const GENEROUS_WINDOW_MS = 1000;

/** Body of `POST /v1/check` as the peers validate it (the shape our service accepts). */
export const checkBodySchema = {
  type: 'object',
  required: ['agent_id'],
  additionalProperties: false,
  properties: {
    agent_id: { type: 'string', minLength: 1, maxLength: 256 },
  },
} as const;

/** Response of an allowed check, the shape (and size) of our service's 200 body. */
export const decisionSchema = {
  type: 'object',
  properties: {
    agent_id: { type: 'string' },
    allowed: { type: 'boolean' },
    retry_after_ms: { type: 'number' },
    limit: { type: 'string' },
    limits: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          resource: { type: 'string' },
          capacity: { type: 'number' },
          remaining: { type: 'number' },
          reset_ms: { type: 'number' },
          refill_per_second: { type: 'number' },
        },
      },
    },
  },
} as const;

export interface CheckBody {
  agent_id: string;
}

/** A decision body like our service's, from a limiter's remaining count and reset time. */
export function decision(agentId: string, remaining: number, resetMs: number) {
  return {
    agent_id: agentId,
    allowed: true,
    retry_after_ms: 0,
    limit: LIMIT_NAME,
    limits: [
      {
        name: LIMIT_NAME,
        resource: 'requests',
        capacity: GENEROUS_CAPACITY,
        remaining,
        reset_ms: resetMs,
        refill_per_second: GENEROUS_CAPACITY,
      },
    ],
  };
}

/** Listens on 127.0.0.1:PORT, prints the ready line, and stops cleanly on SIGTERM. */
export async function serve(app: FastifyInstance, cleanup?: () => Promise<void>): Promise<void> {
  const port = Number(process.env.PORT ?? '0');
  await app.listen({ host: '127.0.0.1', port });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  process.stdout.write(
    `${JSON.stringify({ msg: 'ready', address: `http://127.0.0.1:${address.port}` })}\n`,
  );
  let stopping = false;
  process.on('SIGTERM', () => {
    if (stopping) return;
    stopping = true;
    app
      .close()
      .then(() => cleanup?.())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          process.stderr.write(`${String(error)}\n`);
          process.exit(1);
        },
      );
  });
}
