#!/bin/sh
# One-shot (temporalio/admin-tools): create Temporal's two PostgreSQL databases and bring
# their schemas to the version this admin-tools image ships. Safe to run again: creating
# an existing database is skipped and update-schema only applies what is missing.
set -eu
: "${POSTGRES_SEEDS:?POSTGRES_SEEDS is required}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
PORT="${DB_PORT:-5432}"
SCHEMAS=/etc/temporal/schema/postgresql/v12

echo "waiting for PostgreSQL at ${POSTGRES_SEEDS}:${PORT}"
until nc -z -w 5 "${POSTGRES_SEEDS}" "${PORT}"; do sleep 1; done

sql() {
  temporal-sql-tool --plugin postgres12 --ep "${POSTGRES_SEEDS}" -u "${POSTGRES_USER}" \
    -p "${PORT}" "$@"
}
for db in temporal:temporal temporal_visibility:visibility; do
  name="${db%%:*}"; dir="${db##*:}"
  sql --db "${name}" create || echo "database ${name} exists"
  sql --db "${name}" setup-schema -v 0.0 || echo "schema of ${name} already set up"
  sql --db "${name}" update-schema -d "${SCHEMAS}/${dir}/versioned"
done
echo "Temporal schemas ready"
