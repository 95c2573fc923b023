#!/bin/bash
# Airflow's metadata lives in POSTGRES_DB; the ad data lives in its own database, owned by
# its own role, so the jobs never hold Airflow's credentials. That owner and its database are
# what a managed PostgreSQL service's console gives; the owner gets no other power here
# (warehouse-init lends it CREATEROLE while it applies roles.sql: warehouse-init.sql).
set -euo pipefail
psql -v ON_ERROR_STOP=1 -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres \
  -v wuser="$WAREHOUSE_USER" -v wpass="$WAREHOUSE_PASSWORD" -v wdb="$WAREHOUSE_DB" <<'SQL'
CREATE ROLE :"wuser" LOGIN PASSWORD :'wpass';
CREATE DATABASE :"wdb" OWNER :"wuser";
SQL
