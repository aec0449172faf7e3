import type { FastifyInstance } from 'fastify';
import { HttpProblem } from './problem.js';
import type { EdgeRuntime } from './runtime.js';

/**
 * Liveness and readiness, open to every client (orchestrators probe them without keys), and the
 * replication status for operators (admin scope).
 */
export function registerHealthRoutes(app: FastifyInstance, runtime: EdgeRuntime): void {
  app.get('/healthz', { schema: { summary: 'The process is alive.' } }, async () => ({
    status: 'ok',
  }));
  app.get(
    '/readyz',
    { schema: { summary: 'Config loaded and state restored: ready to take traffic.' } },
    async () => {
      if (!runtime.isReady()) throw new HttpProblem('NOT_READY', 'starting or shutting down');
      return { status: 'ready', agents: runtime.limiter.size };
    },
  );

  app.get(
    '/v1/replication',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Replication between replicas: peers, how far each is heard, counters.',
      },
    },
    async () => runtime.replication() ?? { transport: 'none', peers: [] },
  );
}
