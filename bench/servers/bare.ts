/**
 * Peer (b) of the HTTP benchmark: bare Fastify, the framework ceiling. `POST /v1/check` parses
 * the JSON body and returns a constant object the size of our service's decision; no schema, no
 * hooks, no logger, no rate limiting.
 */
import Fastify from 'fastify';
import { decision, GENEROUS_CAPACITY, serve } from './common.js';

const RESPONSE = decision('agent-1234', GENEROUS_CAPACITY - 1, 1);

const app = Fastify({ logger: false });
app.post('/v1/check', async () => RESPONSE);
await serve(app);
