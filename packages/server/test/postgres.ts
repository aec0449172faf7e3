import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The PostgreSQL the tests use: DATABASE_URL, or the local default. */
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Whether PostgreSQL answers. Under CI=true a missing database is an error (the suite must not
 * pass by skipping); elsewhere the suite is skipped with the reason printed.
 */
export async function postgresAvailable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch (error) {
    const reason = `PostgreSQL at ${DATABASE_URL} is unreachable (${(error as Error).message})`;
    if (process.env.CI === 'true') throw new Error(`${reason}; CI needs it`);
    console.warn(`skipping PostgreSQL tests: ${reason}`);
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** A schema name unique to this test run, so parallel test files never share tables. */
export function uniqueSchema(label: string): string {
  return `t_${label}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** Drops a test schema and everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}
