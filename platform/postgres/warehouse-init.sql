-- What the stack's superuser (POSTGRES_USER) does at every start (the warehouse-init step):
-- the little that needs a superuser, around roles.sql, which runs with the owner's rights
-- only, as a DBA runs it on a managed service. On such a service the provider's console does
-- this part (the owner's login, password and CREATEROLE), and Airflow's database lives
-- elsewhere. Run in the warehouse database; idempotent.
\set ON_ERROR_STOP on
\getenv owner WAREHOUSE_USER
\getenv owner_password WAREHOUSE_PASSWORD

-- One transaction: roles.sql's changes and the owner's CREATEROLE commit together or not
-- at all, so a failed start leaves the owner without it.
BEGIN;
-- the owner's password from .env before anything connects as the owner (migrate does next)
ALTER ROLE :"owner" WITH LOGIN NOSUPERUSER NOCREATEDB PASSWORD :'owner_password'
    CONNECTION LIMIT 12;  -- its share of the connections: roles.sql says why
-- Lent for roles.sql alone and taken back below. Up to PostgreSQL 15 CREATEROLE is almost a
-- superuser (its holder may grant itself pg_execute_server_program, for one); between
-- starts the owner, whose password migrate and the operator's tools hold, has no use for it.
ALTER ROLE :"owner" CREATEROLE;
-- From PostgreSQL 16 a CREATEROLE role alters only the roles it holds ADMIN OPTION on. The
-- ones the owner makes it does; a stack made before roles.sql ran as the owner has the
-- jobs' roles made by the superuser, so the owner is given that option on them (without
-- their rights: no INHERIT, no SET). Up to 15, CREATEROLE alone is enough.
SELECT current_setting('server_version_num')::int >= 160000 AS admin_option_needed \gset
\if :admin_option_needed
SELECT format('GRANT %I TO %I WITH ADMIN OPTION, INHERIT FALSE, SET FALSE', r.rolname, :'owner')
FROM pg_roles r
WHERE r.rolname IN ('adpipe_loader', 'adpipe_archiver', 'adpipe_reader')
  AND NOT EXISTS (SELECT FROM pg_auth_members m
                  WHERE m.roleid = r.oid AND m.member = (SELECT oid FROM pg_roles WHERE rolname = :'owner')
                    AND m.admin_option)
\gexec
\endif
SET SESSION AUTHORIZATION :"owner";
\ir roles.sql
RESET SESSION AUTHORIZATION;
ALTER ROLE :"owner" NOCREATEROLE;
COMMIT;

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
-- and only its role connects to it: Airflow takes advisory locks there (its migrations' at
-- every start, for up to 30 minutes), which any session in that database could hold
REVOKE CONNECT, TEMPORARY ON DATABASE :"airflow_db" FROM PUBLIC;
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
