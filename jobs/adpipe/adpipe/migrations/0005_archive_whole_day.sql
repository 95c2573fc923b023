-- The archive empties a day's partition whole instead of deleting its rows one by one. It
-- holds the partition against every writer before it reads it, so the rows it exports are
-- the rows the partition holds until it commits; then it empties it, proving the count
-- once more. Both run as the owner (the archiver has no privilege on a partition itself).

-- SHARE on the day's partition until the transaction ends: no INSERT, UPDATE or DELETE by
-- anyone; readers go on. False when the day has no partition.
CREATE FUNCTION adpipe_hold_partition(day date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    name text := 'ad_impressions_' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(name) IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('LOCK TABLE %I IN SHARE MODE', name);
    RETURN true;
END
$$;

-- TRUNCATE the day's partition, only in a transaction that holds it (above) and only when
-- it holds exactly `expected` rows. The wait for readers to finish is bounded: past it the
-- caller deletes the rows instead (lock_not_available).
CREATE FUNCTION adpipe_empty_partition(day date, expected bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET lock_timeout = '10s' AS $$
DECLARE
    name text := 'ad_impressions_' || to_char(day, 'YYYYMMDD');
    held boolean;
    found bigint;
BEGIN
    SELECT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'relation' AND relation = to_regclass(name)
          AND pid = pg_backend_pid() AND mode = 'ShareLock' AND granted
    ) INTO held;
    IF NOT held THEN
        RAISE EXCEPTION 'partition % is not held against writers (adpipe_hold_partition)', name
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', name);
    EXECUTE format('SELECT count(*) FROM %I', name) INTO found;
    IF found <> expected THEN
        RAISE EXCEPTION 'partition % holds % rows, not the % expected; nothing emptied',
            name, found, expected USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE format('TRUNCATE %I', name);
END
$$;

REVOKE ALL ON FUNCTION adpipe_hold_partition(date), adpipe_empty_partition(date, bigint)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION adpipe_hold_partition(date), adpipe_empty_partition(date, bigint)
    TO adpipe_archiver;
