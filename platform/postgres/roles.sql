-- The warehouse's roles, run by the superuser at every start (the stack's warehouse-init
-- step), so the passwords in .env are always the ones in force. Each job connects with the
-- least power that does its work; only the owner changes the schema (adpipe.migrate).
--   owner     (WAREHOUSE_USER)  owns every table; runs the migrations; nothing else uses it
--   loader    adpipe_loader     the load: ad_impressions rows, load_runs, reads archive_manifest
--   archiver  adpipe_archiver   the archive and restore: moves rows, writes archive_manifest
--   reader    adpipe_reader     reconcile, psql and other tools: SELECT only
-- What each may do is granted by the owner in migration 0003_least_privilege.sql.
\set ON_ERROR_STOP on
\getenv owner WAREHOUSE_USER
\getenv owner_password WAREHOUSE_PASSWORD
\getenv loader_password WAREHOUSE_LOADER_PASSWORD
\getenv archiver_password WAREHOUSE_ARCHIVER_PASSWORD
\getenv reader_password WAREHOUSE_READER_PASSWORD

SELECT format('CREATE ROLE %I', name)
FROM unnest(ARRAY['adpipe_loader', 'adpipe_archiver', 'adpipe_reader']) AS name
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \gexec

ALTER ROLE :"owner" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_password';
ALTER ROLE adpipe_loader WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
    PASSWORD :'loader_password';
ALTER ROLE adpipe_archiver WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
    PASSWORD :'archiver_password';
ALTER ROLE adpipe_reader WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
    PASSWORD :'reader_password';
-- nobody but the owner creates objects in the warehouse's schema
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Airflow's metadata database belongs to its own role, not the superuser; the superuser
-- (POSTGRES_USER) is used only by this script and by an operator in an emergency. A database
-- made before this role existed has its tables handed over too.
\getenv airflow_db POSTGRES_DB
\getenv airflow_user AIRFLOW_DB_USER
\getenv airflow_password AIRFLOW_DB_PASSWORD
SELECT format('CREATE ROLE %I', :'airflow_user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'airflow_user') \gexec
ALTER ROLE :"airflow_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
    PASSWORD :'airflow_password';
ALTER DATABASE :"airflow_db" OWNER TO :"airflow_user";
\connect :"airflow_db"
SELECT format('ALTER TABLE %I.%I OWNER TO %I', schemaname, tablename, :'airflow_user')
FROM pg_tables WHERE schemaname = 'public' AND tableowner <> :'airflow_user' \gexec
SELECT format('ALTER VIEW %I.%I OWNER TO %I', schemaname, viewname, :'airflow_user')
FROM pg_views WHERE schemaname = 'public' AND viewowner <> :'airflow_user' \gexec
SELECT format('ALTER SEQUENCE %I.%I OWNER TO %I', n.nspname, c.relname, :'airflow_user')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S' AND n.nspname = 'public'
  AND pg_get_userbyid(c.relowner) <> :'airflow_user'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))
\gexec
SELECT format('ALTER TYPE %I.%I OWNER TO %I', n.nspname, t.typname, :'airflow_user')
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = 'public' AND t.typtype = 'e' AND pg_get_userbyid(t.typowner) <> :'airflow_user'
\gexec
