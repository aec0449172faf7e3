import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeService } from '../src/service.js';
import { call, eventually, scratchDir, writeConfig } from './harness.js';

// A local OTLP/HTTP receiver: a plain HTTP server that keeps every JSON body POSTed to
// /v1/metrics, as an OpenTelemetry Collector's otlphttp receiver would accept it.
interface DataPoint {
  attributes?: { key: string; value: { stringValue?: string } }[];
  asInt?: string | number;
  asDouble?: number;
  count?: string | number;
}
interface OtlpMetric {
  name: string;
  gauge?: { dataPoints: DataPoint[] };
  sum?: { dataPoints: DataPoint[]; isMonotonic?: boolean };
  histogram?: { dataPoints: DataPoint[] };
}
interface OtlpBody {
  resourceMetrics: {
    resource: { attributes: { key: string; value: { stringValue?: string } }[] };
    scopeMetrics: { metrics: OtlpMetric[] }[];
  }[];
}

const bodies: OtlpBody[] = [];
const contentTypes: string[] = [];
let receiver: Server;
let endpoint: string;
const scratch = scratchDir();

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/metrics' && req.method === 'POST') {
        contentTypes.push(String(req.headers['content-type']));
        expect(req.headers['x-collector-token']).toBe('secret');
        bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpBody);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/v1/metrics`;
});

afterAll(async () => {
  await new Promise((resolve) => receiver.close(resolve));
  scratch.cleanup();
});

/** The newest data point of `name` with every attribute `key=value` given, across every push so far. */
function latest(name: string, ...attrs: [string, string | number][]): DataPoint | undefined {
  for (const body of [...bodies].reverse()) {
    for (const rm of body.resourceMetrics) {
      for (const sm of rm.scopeMetrics) {
        for (const m of sm.metrics) {
          if (m.name !== name) continue;
          const points = m.gauge?.dataPoints ?? m.sum?.dataPoints ?? m.histogram?.dataPoints ?? [];
          const found = points.find((p) =>
            attrs.every(([key, value]) =>
              p.attributes?.some(
                (a) =>
                  a.key === key &&
                  String(
                    (a.value as { stringValue?: string; intValue?: string }).stringValue ??
                      (a.value as { intValue?: string }).intValue,
                  ) === String(value),
              ),
            ),
          );
          if (found) return found;
        }
      }
    }
  }
  return undefined;
}
const num = (p: DataPoint | undefined) => Number(p?.asInt ?? p?.asDouble ?? p?.count ?? Number.NaN);

describe('OTLP push (diagnostics.otel)', () => {
  it('pushes the same families as /metrics to the configured endpoint, and flushes on stop', async () => {
    const config = writeConfig(
      scratch.dir,
      `
data_dir: ${scratch.dir}/data
node_id: otlp-node
server: { port: 0 }
logging: { level: silent }
limits:
  - { name: requests, capacity: 3, refill: 3, per: day }
diagnostics:
  otel:
    enabled: true
    endpoint: ${endpoint}
    interval_ms: 1000
    headers: { x-collector-token: secret }
`,
    );
    const service = await EdgeService.start({ configPath: config, watchConfig: false, env: {} });
    try {
      for (let i = 0; i < 5; i++)
        await call(service.address, 'POST', '/v1/check', { agent_id: 'otel-agent' });
      await eventually(
        () => num(latest('openclaw_rating_api_requests', ['decision', 'denied'])) === 2,
        10_000,
      );
      expect(num(latest('openclaw_rating_api_requests', ['decision', 'allowed']))).toBe(3);
      expect(num(latest('openclaw_token_bucket_capacity', ['limit', 'requests']))).toBe(3);
      expect(num(latest('openclaw_agents_tracked'))).toBe(1);
      expect(contentTypes[0]).toContain('application/json');
      const resource = bodies[0]?.resourceMetrics[0]?.resource.attributes ?? [];
      expect(resource).toContainEqual({
        key: 'service.instance.id',
        value: { stringValue: 'otlp-node' },
      });
    } finally {
      const pushesBefore = bodies.length;
      await call(service.address, 'POST', '/v1/check', { agent_id: 'late-agent' });
      await service.stop();
      // Stopping pushes what happened since the last interval.
      expect(bodies.length).toBeGreaterThan(pushesBefore);
      expect(num(latest('openclaw_agents_tracked'))).toBe(2);
      const latency = (code: number) =>
        num(
          latest('openclaw_http_request_duration_seconds', ['route', '/v1/check'], ['code', code]),
        );
      expect(latency(200)).toBe(4);
      expect(latency(429)).toBe(2);
    }
  });
});
