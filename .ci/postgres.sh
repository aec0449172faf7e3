#!/usr/bin/env bash
# Makes sure the PostgreSQL the tests use is there (127.0.0.1:5432, trust auth, database `test`):
# the ledger's PostgreSQL suites fail loudly under CI=true without it. Does nothing when it already
# answers; otherwise installs Debian's postgresql, trusts loopback and creates the database.
set -euo pipefail
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "PostgreSQL already running"
else
  if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -1)
  version=$(basename "$(dirname "$(dirname "$hba")")")
  printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$hba"
  pg_ctlcluster "$version" main start || service postgresql start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 ||
  psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE test'
