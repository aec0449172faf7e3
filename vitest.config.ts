import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Packages export their TypeScript sources under this condition, so tests import
    // `@openclaw-edge/<pkg>` exactly as a user would, without a build step first.
    conditions: ['@openclaw-edge/source'],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts'],
    reporters: ['default', './vitest.summary-reporter.ts'],
  },
});
