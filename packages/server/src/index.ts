export { ApiKeys, mayActFor, type Principal, sha256 } from './auth/api-keys.js';
export { main } from './cli.js';
export {
  ConfigError,
  type ConfigIssue,
  defaultConfig,
  ENV_OVERRIDES,
  loadConfigFile,
  parseConfig,
} from './config/load.js';
export { type CompiledPolicies, compilePolicies } from './config/policies.js';
export type { Config, ConfigLimit, Scope } from './config/schema.js';
export { type AppOptions, buildApp } from './http/app.js';
export { HTTP_ERROR_CODES } from './http/problem.js';
export type { RawCheckStats } from './http/raw-check.js';
export type { EdgeRuntime } from './http/runtime.js';
export {
  type GroupCommitStats,
  GroupCommitWriter,
  LedgerUnavailableError,
} from './ledger/group-commit.js';
export type { AppendOutcome, LedgerRow, LedgerStore, UsageTotals } from './ledger/ledger-store.js';
export { openPostgresLedger } from './ledger/postgres.js';
export {
  openSqliteLedger,
  SQLITE_LEDGER_FILE,
  SQLITE_WAL_AUTOCHECKPOINT_PAGES,
} from './ledger/sqlite.js';
export { type RestoreOptions, type RestoreReport, restoreSnapshot } from './restore.js';
export { EdgeService, type ServiceOptions, VERSION } from './service.js';
export { MemorySnapshotStore } from './snapshot/memory-store.js';
export type { Snapshot, SnapshotEntry, SnapshotStore } from './snapshot/snapshot-store.js';
export { SqliteSnapshotStore } from './snapshot/sqlite-store.js';
