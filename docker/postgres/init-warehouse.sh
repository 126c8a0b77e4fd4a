#!/usr/bin/env bash
# Runs once, when the Postgres volume is first initialised (docker-entrypoint-initdb.d).
# Creates the reconciliation warehouse: its own role and database next to Airflow's metadata
# database. The tables themselves are created from sql/ by the `warehouse-init` service
# (reconcile's Warehouse.ensure_schema), and again idempotently by every run.
set -euo pipefail
: "${WAREHOUSE_USER:?}" "${WAREHOUSE_PASSWORD:?}" "${WAREHOUSE_DB:?}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v wh_user="$WAREHOUSE_USER" -v wh_password="$WAREHOUSE_PASSWORD" -v wh_db="$WAREHOUSE_DB" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'wh_user', :'wh_password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'wh_user') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'wh_db', :'wh_user')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'wh_db') \gexec
SQL
echo "warehouse database ${WAREHOUSE_DB} ready (owner ${WAREHOUSE_USER})"
