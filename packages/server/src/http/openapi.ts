import type { FastifyInstance, RouteOptions } from 'fastify';

declare module 'fastify' {
  interface FastifySchema {
    /** One line for /v1/openapi.json. */
    summary?: string;
  }
}

interface RecordedRoute {
  readonly method: string;
  readonly url: string;
  readonly schema: RouteOptions['schema'];
  readonly scope: string | undefined;
}

/**
 * Serves /v1/openapi.json, assembled from the schemas the routes validate with (recorded as
 * routes register), so the document cannot disagree with the server.
 */
export function registerOpenApi(app: FastifyInstance, version: string): void {
  const routes: RecordedRoute[] = [];
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method === 'HEAD') continue;
      routes.push({
        method: method.toLowerCase(),
        url: route.url,
        schema: route.schema,
        scope: route.config?.scope,
      });
    }
  });
  let document: unknown;
  app.get('/v1/openapi.json', { schema: { summary: 'This document.' } }, async () => {
    document ??= build(routes, version);
    return document;
  });
}

function build(routes: readonly RecordedRoute[], version: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = route.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const schema = (route.schema ?? {}) as Record<string, unknown>;
    const params = schema.params as { properties?: Record<string, unknown> } | undefined;
    const query = schema.querystring as
      | { properties?: Record<string, unknown>; required?: string[] }
      | undefined;
    const response = (schema.response ?? {}) as Record<string, unknown>;
    paths[path] ??= {};
    (paths[path] as Record<string, unknown>)[route.method] = {
      summary: schema.summary,
      ...(route.scope ? { security: [{ apiKey: [] }], 'x-scope': route.scope } : {}),
      parameters: [
        ...Object.entries(params?.properties ?? {}).map(([name, s]) => ({
          name,
          in: 'path',
          required: true,
          schema: s,
        })),
        ...Object.entries(query?.properties ?? {}).map(([name, s]) => ({
          name,
          in: 'query',
          required: query?.required?.includes(name) ?? false,
          schema: s,
        })),
      ],
      ...(schema.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: schema.body } },
            },
          }
        : {}),
      responses: {
        ...Object.fromEntries(
          Object.entries(response).map(([status, s]) => [
            status,
            {
              description: status,
              content: {
                [status.startsWith('2') ? 'application/json' : 'application/problem+json']: {
                  schema: s,
                },
              },
            },
          ]),
        ),
        default: { description: 'RFC 9457 problem details with a stable code (docs/api.md).' },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'OpenClaw Rating Edge', version },
    components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } },
    paths,
  };
}
