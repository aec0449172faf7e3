import { defineConfig } from 'vitest/config';

const sourceCondition = '@openclaw-edge/source';

export default defineConfig({
  // Packages export their TypeScript sources under this condition, so tests import
  // `@openclaw-edge/<pkg>` exactly as a user would, with no build step first. Tests run in
  // vite's server (ssr) environment, which takes its conditions from `ssr.resolve`.
  ssr: { resolve: { conditions: [sourceCondition], externalConditions: [sourceCondition] } },
  resolve: { conditions: [sourceCondition] },
  test: {
    include: [
      'packages/*/test/**/*.test.ts',
      'test/**/*.test.ts',
      'sim/test/**/*.test.ts',
      'bench/test/**/*.test.ts',
    ],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default', './vitest.summary-reporter.ts'],
  },
});
