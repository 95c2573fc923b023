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
