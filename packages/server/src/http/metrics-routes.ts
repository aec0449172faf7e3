import type { FastifyInstance } from 'fastify';
import type { EdgeMetrics } from '../metrics/edge-metrics.js';

/**
 * `GET /metrics` for Prometheus (scope `metrics`), and the request-latency hook that feeds its
 * histogram. The hook reads the time Fastify already measured; it adds no clock read.
 */
export function registerMetricsRoutes(app: FastifyInstance, metrics: EdgeMetrics): void {
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observeRequest(
      request.method,
      request.routeOptions.url ?? 'unmatched',
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
    done();
  });
  app.get(
    '/metrics',
    {
      config: { scope: 'metrics' },
      schema: {
        summary:
          'Prometheus metrics (text format, or OpenMetrics when the Accept header asks for it); docs/metrics.md lists them.',
      },
    },
    async (request, reply) => {
      const { contentType, body } = await metrics.render(request.headers.accept);
      return reply.type(contentType).send(body);
    },
  );
}
