import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { KyselyLedgerStore } from './kysely-store.js';
import type { LedgerDatabase } from './tables.js';

/** File name of the embedded ledger inside the data dir. */
export const SQLITE_LEDGER_FILE = 'ledger.sqlite';

/**
 * The embedded ledger: SQLite (better-sqlite3) in WAL mode in the data dir. `synchronous`
 * FULL (the default) fsyncs the WAL at every commit, so an acknowledged batch survives a power
 * loss; NORMAL survives a process crash (SIGKILL) but may lose the last commits on power loss.
 */
export function openSqliteLedger(
  dataDir: string,
  synchronous: 'full' | 'normal' = 'full',
): KyselyLedgerStore {
  mkdirSync(dataDir, { recursive: true });
  const database = new Database(join(dataDir, SQLITE_LEDGER_FILE));
  database.pragma('journal_mode = WAL');
  database.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
  database.pragma('busy_timeout = 5000');
  const db = new Kysely<LedgerDatabase>({ dialect: new SqliteDialect({ database }) });
  return new KyselyLedgerStore('sqlite', db);
}
