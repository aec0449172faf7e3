import { readFileSync, readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { setPriority } from 'node:os';
import { basename, dirname, join } from 'node:path';
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

/** The lowest CPU priority Linux gives a thread. */
export const BACKGROUND_NICE = 19;

/**
 * Lowers the calling thread's CPU priority to `nice` (Linux: `setpriority` on the thread's own
 * id, read from /proc/thread-self), so that when this thread and the event loop want the same
 * core, the event loop gets it. Returns false where that cannot be done (not Linux, or refused);
 * the thread then keeps its priority. For threads whose work nobody waits for right away.
 */
export function lowerThreadPriority(nice = BACKGROUND_NICE): boolean {
  try {
    const tid = Number(basename(readlinkSync('/proc/thread-self')));
    if (!Number.isInteger(tid) || tid <= 0) return false;
    setPriority(tid, nice);
    return true;
  } catch {
    return false;
  }
}
