-- The writers' locks move from PostgreSQL's advisory locks, which every role may take (a
-- session of the reader held them all and stalled every load, the archive and migrate), to
-- rows of adpipe_locks, which only the writers may lock: SELECT ... FOR SHARE / FOR UPDATE
-- needs UPDATE privilege on the table, and the reader has no privilege on it at all (not even
-- SELECT, so it cannot hold its ACCESS SHARE either). Revoking the advisory-lock functions
-- from PUBLIC instead would need a superuser, which managed PostgreSQL services do not give.
-- adpipe/locks.py takes every one of these locks; the kinds below are its kinds.
CREATE TABLE adpipe_locks (
    kind  text NOT NULL CHECK (kind IN ('archive', 'partition', 'day', 'window')),
    key   text NOT NULL,  -- '' for the kinds with one row; a day as YYYY-MM-DD; a window's backup prefix
    PRIMARY KEY (kind, key)
);
REVOKE ALL ON adpipe_locks FROM PUBLIC;
-- UPDATE only because the row-locking clauses require it; INSERT for a window's or a day's
-- first row. No DELETE, no TRUNCATE: a row, once there, stays.
GRANT SELECT, INSERT, UPDATE ON adpipe_locks TO adpipe_loader, adpipe_archiver;

-- The rows are locked, never changed: an UPDATE that moved one would let two writers believe
-- they each hold its lock.
CREATE FUNCTION adpipe_locks_unchanged() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'adpipe_locks rows are locked, never changed (adpipe/locks.py)'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER adpipe_locks_unchanged BEFORE UPDATE ON adpipe_locks
    FOR EACH ROW EXECUTE FUNCTION adpipe_locks_unchanged();

-- the one archive lock, the one partition lock, and a row for each day that has a partition
-- (a later day's row is made with its partition, below)
INSERT INTO adpipe_locks (kind, key) VALUES ('archive', ''), ('partition', '');
INSERT INTO adpipe_locks (kind, key)
SELECT 'day', to_char(to_date(right(c.relname, 8), 'YYYYMMDD'), 'YYYY-MM-DD')
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'ad_impressions'::regclass AND c.relname ~ '^ad_impressions_\d{8}$'
ON CONFLICT DO NOTHING;

-- Migration 0003's function, with the partition lock on its row instead of an advisory key.
-- It also makes the day's lock row, here in the caller's short transaction of its own (the
-- load and restore make a day's partitions before their long transaction): a load's
-- transaction then only locks the row, where inserting it there would make every other load
-- of the day wait for that load's commit. 0004's settings are restated: CREATE OR REPLACE
-- replaces them with the SET list given here.
CREATE OR REPLACE FUNCTION adpipe_ensure_partition(day date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' AS $$
DECLARE
    name text := 'ad_impressions_' || to_char(day, 'YYYYMMDD');
    low timestamptz := (day::timestamp AT TIME ZONE 'UTC');
BEGIN
    -- one partition DDL at a time: two loads of a new day would both find it missing
    PERFORM FROM adpipe_locks WHERE kind = 'partition' AND key = '' FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'adpipe_locks has no partition row (migration 0006)'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    INSERT INTO adpipe_locks (kind, key) VALUES ('day', to_char(day, 'YYYY-MM-DD'))
        ON CONFLICT DO NOTHING;
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE ad_impressions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format('ALTER TABLE ad_impressions ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   name, low, low + interval '1 day');
    RETURN true;
END
$$;
