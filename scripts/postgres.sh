#!/usr/bin/env bash
# A PostgreSQL server on 127.0.0.1:5432 for the context server's tests and benchmarks:
# Debian's `postgresql` (installed when missing), its cluster started, the `postgres` role
# given the password `stack` for TCP logins. Idempotent; prints the base URL last.
# Override with STACK_TEST_POSTGRES=postgres://… (the tests then use that server instead).
set -euo pipefail
if [ -n "${STACK_TEST_POSTGRES:-}" ]; then
  echo "postgres: using $STACK_TEST_POSTGRES"
  exit 0
fi
if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
  echo "postgres: installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi
read -r version cluster _ < <(pg_lsclusters --no-header | head -n 1) || true
if [ -z "${version:-}" ]; then
  version="$(ls /usr/lib/postgresql | sort -n | tail -n 1)"
  cluster=main
  pg_createcluster "$version" "$cluster" >/dev/null
fi
if ! pg_lsclusters --no-header | grep -q "^$version *$cluster .*online"; then
  echo "postgres: starting cluster $version/$cluster"
  pg_ctlcluster "$version" "$cluster" start
fi
for _ in $(seq 1 60); do
  su postgres -c "psql -qtAc 'SELECT 1'" >/dev/null 2>&1 && break
  sleep 0.5
done
su postgres -c "psql -qtAc \"ALTER ROLE postgres PASSWORD 'stack'\"" >/dev/null
echo "postgres: ready at postgres://postgres:stack@127.0.0.1:5432/postgres"
