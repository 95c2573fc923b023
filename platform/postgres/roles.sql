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
-- only the warehouse's roles connect to it (Airflow's role never needs to)
SELECT current_database() AS warehouse_db \gset
REVOKE CONNECT ON DATABASE :"warehouse_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"warehouse_db" TO :"owner", adpipe_loader, adpipe_archiver, adpipe_reader;

-- The reader is whoever runs `make psql` or `make query`: its session's defaults bound a
-- forgotten statement or an open transaction, which holds ACCESS SHARE on what it read and
-- so holds up the DDL of a migration or a partition drop. They are defaults, for accidents:
-- a session may SET its own (the writers' locks it cannot take at all: adpipe/locks.py).
-- The jobs set their own timeouts (WAREHOUSE_STATEMENT_TIMEOUT, WAREHOUSE_LOCK_TIMEOUT).
ALTER ROLE adpipe_reader SET statement_timeout = '10min';
ALTER ROLE adpipe_reader SET idle_in_transaction_session_timeout = '2min';

-- Connections. One server holds the warehouse and Airflow's metadata database, and
-- max_connections (PostgreSQL's default, 100, as docker-compose.yml leaves it) bounds both:
-- a role of the warehouse that opened every free connection would stop Airflow. Each
-- warehouse role therefore has a limit (it counts in every database), and together they leave
-- Airflow at least airflow_connections: its api-server, scheduler, dag-processor and
-- triggerer (and the Celery profile's two workers) each keep a SQLAlchemy pool of 5 that may
-- overflow by 10; 8 to 12 are open in use.
--   owner     migrate, make psql ROLE=owner, make accept-gap, the tests' own sessions
--   loader    one a load; api-load runs at most 4 at once, a backfill and a test beside them
--   archiver  3 an archive run (its work, its export, its lock), 2 a restore; one at a time
--   reader    one a reconcile, make psql, make query
\set airflow_connections 45
ALTER ROLE :"owner" CONNECTION LIMIT 12;
ALTER ROLE adpipe_loader CONNECTION LIMIT 16;
ALTER ROLE adpipe_archiver CONNECTION LIMIT 10;
ALTER ROLE adpipe_reader CONNECTION LIMIT 10;
SELECT current_setting('max_connections')::int
       - current_setting('superuser_reserved_connections')::int
       - sum(rolconnlimit) AS airflow_room
FROM pg_roles WHERE rolname IN (:'owner', 'adpipe_loader', 'adpipe_archiver', 'adpipe_reader')
\gset
SELECT :airflow_room < :airflow_connections AS airflow_short \gset
\if :airflow_short
SELECT format('DO $$BEGIN RAISE EXCEPTION %L; END$$', format(
    'the warehouse roles'' connection limits leave Airflow %s connections, fewer than its %s: '
    'lower them in platform/postgres/roles.sql or raise max_connections',
    :airflow_room, :airflow_connections)) \gexec
\endif

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
