import { main } from './cli.js';

// Entry point of the `openclaw-edge` command: exits with the CLI's code; a crash exits 1.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `openclaw-edge: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
