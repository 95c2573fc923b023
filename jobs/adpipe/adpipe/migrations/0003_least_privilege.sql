-- Least privilege: what each job's role may do (the roles are made by platform/postgres/
-- roles.sql). Nobody but the owner may drop, truncate or alter a table. Day partitions are
-- made and dropped only through the two functions below, which run as the owner.
REVOKE ALL ON ad_impressions, load_runs, archive_manifest, schema_migrations FROM PUBLIC;

-- the load: replaces a window's rows, records its run, checks what is archived
GRANT SELECT, INSERT, DELETE ON ad_impressions TO adpipe_loader;
GRANT SELECT, INSERT, UPDATE ON load_runs TO adpipe_loader;
GRANT USAGE ON SEQUENCE load_runs_load_run_id_seq TO adpipe_loader;
GRANT SELECT ON archive_manifest, schema_migrations TO adpipe_loader;

-- the archive and restore: move a day's rows out and back, record each object
GRANT SELECT, INSERT, DELETE ON ad_impressions TO adpipe_archiver;
GRANT SELECT, INSERT, UPDATE ON archive_manifest TO adpipe_archiver;
GRANT USAGE ON SEQUENCE archive_manifest_archive_id_seq TO adpipe_archiver;
GRANT SELECT ON schema_migrations TO adpipe_archiver;

-- reconcile and tools
GRANT SELECT ON ad_impressions, load_runs, archive_manifest, schema_migrations TO adpipe_reader;

-- One partition of ad_impressions for the day, when missing: created on its own, then
-- attached (SHARE UPDATE EXCLUSIVE on the parent, which readers do not conflict with).
CREATE FUNCTION adpipe_ensure_partition(day date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    name text := 'ad_impressions_' || to_char(day, 'YYYYMMDD');
    low timestamptz := (day::timestamp AT TIME ZONE 'UTC');
BEGIN
    PERFORM pg_advisory_xact_lock(4242002);
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE ad_impressions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format('ALTER TABLE ad_impressions ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   name, low, low + interval '1 day');
    RETURN true;
END
$$;

-- Drop the day's partition when it holds no row; false when it does or does not exist.
CREATE FUNCTION adpipe_drop_empty_partition(day date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    name text := 'ad_impressions_' || to_char(day, 'YYYYMMDD');
    found boolean;
BEGIN
    IF to_regclass(name) IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', name);
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', name) INTO found;
    IF found THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP TABLE %I', name);
    RETURN true;
END
$$;

REVOKE ALL ON FUNCTION adpipe_ensure_partition(date), adpipe_drop_empty_partition(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION adpipe_ensure_partition(date) TO adpipe_loader, adpipe_archiver;
GRANT EXECUTE ON FUNCTION adpipe_drop_empty_partition(date) TO adpipe_archiver;
