import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { sha256 } from './auth/api-keys.js';
import { ConfigError, defaultConfig, loadConfigFile } from './config/load.js';
import { EdgeService, type ServiceOptions, VERSION } from './service.js';

const USAGE = `openclaw-edge ${VERSION}: per-agent rate limits, budgets and rating at the edge

Usage:
  openclaw-edge serve [--config FILE]        run the service (default 127.0.0.1:8080)
  openclaw-edge exporter [--config FILE] [--host H] [--port N]
                                             serve /metrics from the state the edge writes to
                                             data_dir, taking no traffic (default 127.0.0.1:9464)
  openclaw-edge config validate FILE         check a config file; exit 1 with every problem
  openclaw-edge config print [--config FILE] print the effective config (file + env + defaults)
  openclaw-edge key new                      make an API key and the sha256 to put in config
  openclaw-edge key hash                     read a key on stdin, print its sha256 for config

The config file may also be given as OPENCLAW_EDGE_CONFIG. Env overrides: HOST, PORT,
OPENCLAW_EDGE_DATA_DIR, OPENCLAW_EDGE_NODE_ID, LOG_LEVEL, OPENCLAW_EDGE_LOG_FORMAT.
Signals: SIGHUP reloads the config, SIGTERM drains and stops.`;

/** Runs the CLI; resolves with the exit code (serve resolves only when the service stops). */
export async function main(argv: readonly string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    return usageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const configPath = values.config ?? (process.env.OPENCLAW_EDGE_CONFIG || undefined);
  const [command, sub, arg] = positionals;
  try {
    if (command === 'serve' && sub === undefined) return await serve(config(configPath));
    if (command === 'exporter' && sub === undefined) {
      const port = values.port === undefined ? DEFAULT_EXPORTER_PORT : Number(values.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        return usageError(`--port must be an integer from 0 to 65535, not "${values.port}"`);
      }
      return await serve({
        ...config(configPath),
        role: 'exporter',
        listen: { host: values.host ?? '127.0.0.1', port },
      });
    }
    if (command === 'config' && sub === 'validate' && arg !== undefined) {
      loadConfigFile(arg);
      process.stdout.write(`ok: ${arg} is a valid config\n`);
      return 0;
    }
    if (command === 'config' && sub === 'print' && arg === undefined) {
      const config = configPath ? loadConfigFile(configPath) : defaultConfig();
      process.stdout.write(stringify(config));
      return 0;
    }
    if (command === 'key' && sub === 'new') {
      const key = `oc_${randomBytes(24).toString('base64url')}`;
      process.stdout.write(`key:    ${key}\nsha256: ${sha256(key).toString('hex')}\n`);
      return 0;
    }
    if (command === 'key' && sub === 'hash') {
      const secret = (await readStdin()).trim();
      if (secret.length === 0) return usageError('key hash: give the key on standard input');
      process.stdout.write(`${sha256(secret).toString('hex')}\n`);
      return 0;
    }
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 1;
    }
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      process.stderr.write(
        `openclaw-edge: cannot listen (${code}: ${(error as Error).message}); choose another address with ${(error as { setting?: string }).setting ?? 'HOST and PORT or server.host and server.port'}\n`,
      );
      return 1;
    }
    throw error;
  }
  return usageError(
    command === undefined ? 'no command given' : `unknown command: ${positionals.join(' ')}`,
  );
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      host: { type: 'string' },
      port: { type: 'string' },
      version: { type: 'boolean' },
    },
  });
}

const DEFAULT_EXPORTER_PORT = 9464;

function config(configPath: string | undefined): ServiceOptions {
  return configPath === undefined ? {} : { configPath };
}

async function serve(options: ServiceOptions): Promise<number> {
  const service = await EdgeService.start(options);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      // A repeated signal while draining must not kill the process before its final snapshot.
      if (stopping) {
        service.logger.info({ signal }, 'already stopping');
        return;
      }
      stopping = true;
      service.logger.info({ signal }, 'stopping');
      service.stop().then(
        () => resolve(0),
        (error: unknown) => {
          service.logger.error({ err: error }, 'stop failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => service.reload());
  });
}

function usageError(message: string): number {
  process.stderr.write(`openclaw-edge: ${message}\n\n${USAGE}\n`);
  return 2;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
