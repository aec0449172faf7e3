/**
 * Benchmark dispatcher: `npm run bench -- <name> [args]` runs `bench/<name>.bench.ts`
 * (default `core`). Each benchmark module exports `main(args)`.
 *
 * The npm script starts Node with `--expose-gc` (memory measurements force collections) and
 * `--conditions=@openclaw-edge/source`, so workspace packages resolve to their TypeScript
 * sources through tsx rather than to a possibly stale `dist/`.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SUFFIX = '.bench.ts';

type BenchMain = (args: readonly string[]) => Promise<void>;

function hasMain(mod: unknown): mod is { main: BenchMain } {
  return (
    typeof mod === 'object' &&
    mod !== null &&
    typeof (mod as { main?: unknown }).main === 'function'
  );
}

async function run(argv: readonly string[]): Promise<number> {
  const benchDir = fileURLToPath(new URL('.', import.meta.url));
  const available = readdirSync(benchDir)
    .filter((file) => file.endsWith(SUFFIX))
    .map((file) => file.slice(0, -SUFFIX.length))
    .sort();
  const [name = 'core', ...rest] = argv;
  const usage = `Usage: npm run bench -- <name> [args]\nAvailable benchmarks: ${available.join(', ')}`;
  if (name === '--help' || name === '-h') {
    console.log(usage);
    return 0;
  }
  if (!available.includes(name)) {
    console.error(`Unknown benchmark "${name}".\n${usage}`);
    return 2;
  }
  const mod: unknown = await import(pathToFileURL(join(benchDir, `${name}${SUFFIX}`)).href);
  if (!hasMain(mod)) {
    console.error(`bench/${name}${SUFFIX} does not export main(args).`);
    return 1;
  }
  await mod.main(rest);
  return 0;
}

process.exitCode = await run(process.argv.slice(2));
