-- The warehouse's roles, applied by the warehouse database's OWNER, no superuser: what a DBA
-- runs on a managed PostgreSQL service, where the provider's console gives the owner LOGIN
-- and CREATEROLE and the database, and nothing more. Run it again whenever .env's passwords
-- change: it is idempotent, and the passwords it is given are the ones in force afterwards.
--   WAREHOUSE_LOADER_PASSWORD=... WAREHOUSE_ARCHIVER_PASSWORD=... WAREHOUSE_READER_PASSWORD=... \
--     psql "host=... dbname=<warehouse> user=<owner>" -f platform/postgres/roles.sql
-- The stack runs it at every start through platform/postgres/warehouse-init.sql, which lends
-- the owner CREATEROLE for it and takes it back.
--
-- Each job connects with the least power that does its work; only the owner changes the
-- schema (adpipe.migrate).
--   owner     (WAREHOUSE_USER)  owns every table; runs the migrations; nothing else uses it
--   loader    adpipe_loader     the load: ad_impressions rows, load_runs, reads archive_manifest
--   archiver  adpipe_archiver   the archive and restore: moves rows, writes archive_manifest
--   reader    adpipe_reader     reconcile, psql and other tools: SELECT only
-- What each may do is granted by the owner in migration 0003_least_privilege.sql.
--
-- What a role with CREATEROLE may do, PostgreSQL 16 on: alter only the roles it holds ADMIN
-- OPTION on (the ones it created, or was granted so), and never a role's SUPERUSER,
-- REPLICATION or BYPASSRLS, nor CREATEDB unless it has CREATEDB: even a statement that only
-- says NOSUPERUSER or NOCREATEDB is refused. So this script sets only what the owner may, and
-- checks the rest at the end.
\set ON_ERROR_STOP on
\getenv loader_password WAREHOUSE_LOADER_PASSWORD
\getenv archiver_password WAREHOUSE_ARCHIVER_PASSWORD
\getenv reader_password WAREHOUSE_READER_PASSWORD
SELECT :{?loader_password} AND :{?archiver_password} AND :{?reader_password} AS passwords_given
\gset
\if :passwords_given
\else
DO $$BEGIN RAISE EXCEPTION 'roles.sql sets the jobs'' passwords from the environment: set '
    'WAREHOUSE_LOADER_PASSWORD, WAREHOUSE_ARCHIVER_PASSWORD and WAREHOUSE_READER_PASSWORD '
    '(.env has them)'; END$$;
\endif
SELECT current_user AS owner, current_database() AS warehouse_db \gset
SELECT pg_has_role(current_user, datdba, 'MEMBER') AS runs_as_owner
FROM pg_database WHERE datname = current_database() \gset
\if :runs_as_owner
\else
SELECT format('DO $$BEGIN RAISE EXCEPTION %L; END$$', format(
    'roles.sql runs as the owner of database %s (WAREHOUSE_USER), not as %s: '
    'psql -U <owner> -d %s -f platform/postgres/roles.sql',
    :'warehouse_db', :'owner', :'warehouse_db')) \gexec
\endif

-- The owner's own powers, checked before it uses them, so that a refusal names its remedy:
-- CREATEROLE, and from PostgreSQL 16 ADMIN OPTION on each job role that exists already (one
-- a superuser made, on a stack from before roles.sql ran as the owner).
SELECT string_agg(fix, ' ') AS owner_fixes FROM (
    SELECT format('ALTER ROLE %I CREATEROLE;', rolname)
    FROM pg_roles WHERE rolname = current_user AND NOT (rolcreaterole OR rolsuper)
    UNION ALL
    SELECT format('GRANT %I TO %I WITH ADMIN OPTION, INHERIT FALSE, SET FALSE;',
                  rolname, current_user)
    FROM pg_roles
    WHERE rolname IN ('adpipe_loader', 'adpipe_archiver', 'adpipe_reader')
      AND current_setting('server_version_num')::int >= 160000
      AND NOT pg_has_role(current_user, oid, 'MEMBER WITH ADMIN OPTION')
) AS found(fix) \gset
\if :{?owner_fixes}
SELECT format('DO $$BEGIN RAISE EXCEPTION %L; END$$', format(
    'the owner %s may not manage the warehouse''s roles yet: run as a superuser (on a managed '
    'service, the provider''s administrator role) %s then platform/postgres/roles.sql again',
    :'owner', :'owner_fixes')) \gexec
\endif

-- Made here, by the owner: on PostgreSQL 16 on, the role that creates one holds ADMIN OPTION
-- on it, without inheriting its rights or being able to SET ROLE to it.
SELECT format('CREATE ROLE %I', name)
FROM unnest(ARRAY['adpipe_loader', 'adpipe_archiver', 'adpipe_reader']) AS name
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \gexec

ALTER ROLE adpipe_loader WITH LOGIN NOCREATEROLE NOINHERIT PASSWORD :'loader_password';
ALTER ROLE adpipe_archiver WITH LOGIN NOCREATEROLE NOINHERIT PASSWORD :'archiver_password';
ALTER ROLE adpipe_reader WITH LOGIN NOCREATEROLE NOINHERIT PASSWORD :'reader_password';
-- nobody but the owner creates objects in the warehouse's schema (public belongs to the
-- database's owner from PostgreSQL 15 on)
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- only the warehouse's roles connect to it (Airflow's role never needs to); the owner
-- keeps its own right to as the database's owner
REVOKE CONNECT ON DATABASE :"warehouse_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"warehouse_db" TO adpipe_loader, adpipe_archiver, adpipe_reader;

-- The reader is whoever runs `make psql` or `make query`: its session's defaults bound a
-- forgotten statement or an open transaction, which holds ACCESS SHARE on what it read and
-- so holds up the DDL of a migration or a partition drop. They are defaults, for accidents:
-- a session may SET its own (the writers' locks it cannot take at all: adpipe/locks.py).
-- The jobs set their own timeouts (WAREHOUSE_STATEMENT_TIMEOUT, WAREHOUSE_LOCK_TIMEOUT).
ALTER ROLE adpipe_reader SET statement_timeout = '10min';
ALTER ROLE adpipe_reader SET idle_in_transaction_session_timeout = '2min';

-- Connections. On the stack one server holds the warehouse and Airflow's metadata database,
-- and max_connections (PostgreSQL's default, 100, as docker-compose.yml leaves it) bounds
-- both: a role of the warehouse that opened every free connection would stop Airflow. Each
-- warehouse role therefore has a limit (it counts in every database), and together they leave
-- Airflow at least airflow_connections: its api-server, scheduler, dag-processor and
-- triggerer (and the Celery profile's two workers) each keep a SQLAlchemy pool of 5 that may
-- overflow by 10; 8 to 12 are open in use.
--   owner     12: migrate, make psql ROLE=owner, make accept-gap, the tests' own sessions.
--             A role may not change its own limit (PostgreSQL 16 on), so the stack's
--             superuser sets it (warehouse-init.sql); on a managed service, the provider's
--             console, or none (then it is not counted below).
--   loader    one a load; api-load runs at most 4 at once, a backfill and a test beside them
--   archiver  3 an archive run (its work, its export, its lock), 2 a restore; one at a time
--   reader    one a reconcile, make psql, make query
\set airflow_connections 45
ALTER ROLE adpipe_loader CONNECTION LIMIT 16;
ALTER ROLE adpipe_archiver CONNECTION LIMIT 10;
ALTER ROLE adpipe_reader CONNECTION LIMIT 10;
SELECT current_setting('max_connections')::int
       - current_setting('superuser_reserved_connections')::int
       - sum(rolconnlimit) FILTER (WHERE rolconnlimit >= 0) AS airflow_room
FROM pg_roles WHERE rolname IN (:'owner', 'adpipe_loader', 'adpipe_archiver', 'adpipe_reader')
\gset
SELECT :airflow_room < :airflow_connections AS airflow_short \gset
\if :airflow_short
SELECT format('DO $$BEGIN RAISE EXCEPTION %L; END$$', format(
    'the warehouse roles'' connection limits leave Airflow %s connections, fewer than its %s: '
    'lower them in platform/postgres/roles.sql or raise max_connections',
    :airflow_room, :airflow_connections)) \gexec
\endif

-- What the owner may not change, checked: a job's role with a power beyond its grants (given
-- by a superuser, before or by hand), or a schema in which any role may still create (on
-- PostgreSQL 14 and older public belongs to the bootstrap superuser, and the REVOKE above only
-- warns), is refused, with the statement that a superuser (on a managed service, the
-- provider's administrator role) runs to take it away.
SELECT string_agg(fix, ' ') AS superuser_fixes FROM (
    SELECT format('ALTER ROLE %I NOSUPERUSER NOCREATEDB NOREPLICATION NOBYPASSRLS;', rolname)
    FROM pg_roles
    WHERE rolname IN ('adpipe_loader', 'adpipe_archiver', 'adpipe_reader')
      AND (rolsuper OR rolcreatedb OR rolreplication OR rolbypassrls)
    UNION ALL
    SELECT 'REVOKE CREATE ON SCHEMA public FROM PUBLIC;'
    WHERE has_schema_privilege('adpipe_reader', 'public', 'CREATE')
) AS found(fix) \gset
\if :{?superuser_fixes}
SELECT format('DO $$BEGIN RAISE EXCEPTION %L; END$$', format(
    'the warehouse''s roles hold more than roles.sql can take away: run as a superuser %s '
    'then platform/postgres/roles.sql again', :'superuser_fixes')) \gexec
\endif
