import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * Starts the module `name` beside `callerUrl` (the caller's `import.meta.url`) in a worker
 * thread. Built (dist), it is a .js file beside the caller. From the TypeScript sources (`npm
 * start`, the tests) the thread loads it through tsx's API, as the main thread was: a worker
 * does not inherit the main thread's loader on Node 20.
 */
export function startThread(callerUrl: string, name: string, workerData: unknown): Worker {
  if (fileURLToPath(callerUrl).endsWith('.js')) {
    return new Worker(new URL(`./${name}.js`, callerUrl), { workerData });
  }
  const require = createRequire(callerUrl);
  const tsxPackage = require.resolve('tsx/package.json');
  const exports = JSON.parse(readFileSync(tsxPackage, 'utf8')).exports['./esm/api'].import.default;
  const api = pathToFileURL(join(dirname(tsxPackage), exports)).href;
  const entry = new URL(`./${name}.ts`, callerUrl).href;
  const boot = `import(${JSON.stringify(api)}).then(({ tsImport }) => tsImport(${JSON.stringify(entry)}, ${JSON.stringify(entry)}))`;
  return new Worker(boot, { eval: true, workerData });
}
