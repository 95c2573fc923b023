-- History is insert-only for the jobs. A committed load run keeps its window, manifest,
-- checksum and counts, and an archive object its key, checksums and counts: neither job may
-- rewrite or delete the rows that reconcile and the "already archived" check trust. The load
-- writes its run row once, complete, in the transaction that replaces the window; the
-- archiver may only mark an object restored, once.
REVOKE UPDATE, DELETE ON load_runs FROM adpipe_loader;
REVOKE UPDATE, DELETE ON archive_manifest FROM adpipe_archiver;
GRANT UPDATE (restored_at) ON archive_manifest TO adpipe_archiver;

-- restored_at goes from NULL to a time and never back: an object marked restored had its
-- rows put back and was deleted; listing it again would count its rows twice. set_aside_key
-- is written only in that same step (`archive set-aside`).
CREATE FUNCTION adpipe_restored_once() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    IF OLD.restored_at IS NOT NULL THEN
        RAISE EXCEPTION 'archive_manifest row % was restored at %; it stays so',
            OLD.archive_id, OLD.restored_at USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.restored_at IS NULL AND NEW.set_aside_key IS NOT NULL THEN
        RAISE EXCEPTION 'archive_manifest row % can be set aside only as it leaves the archive',
            OLD.archive_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER archive_manifest_restored_once BEFORE UPDATE ON archive_manifest
    FOR EACH ROW EXECUTE FUNCTION adpipe_restored_once();

-- An archive object leaves the archive two ways: restored (its rows back in ad_impressions)
-- or set aside (`archive set-aside`: copied to s3://ad-data/set-aside/, verified, removed
-- from archive/; its rows then come back by reloading the day's windows from their backups).
-- restored_at records when it left, set_aside_key where it went when it was set aside.
ALTER TABLE archive_manifest ADD COLUMN set_aside_key text;
GRANT UPDATE (set_aside_key) ON archive_manifest TO adpipe_archiver;

-- What an operator did to the archive with `archive adopt` and `archive set-aside`: one row
-- per object, written in the transaction that records the change, never changed after.
CREATE TABLE archive_actions (
    action_id   bigserial   PRIMARY KEY,
    action      text        NOT NULL CHECK (action IN ('adopt', 'set-aside')),
    object_key  text        NOT NULL,
    moved_to    text,
    shown_date  date,
    rows        bigint,
    sha256      char(64)    NOT NULL,
    listed      boolean     NOT NULL,
    done_by     text        NOT NULL DEFAULT current_user,
    done_at     timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON archive_actions FROM PUBLIC;
GRANT SELECT, INSERT ON archive_actions TO adpipe_archiver;
GRANT USAGE ON SEQUENCE archive_actions_action_id_seq TO adpipe_archiver;
GRANT SELECT ON archive_actions TO adpipe_reader;

-- A partition's bounds are rendered to text and read back inside the function: with the
-- caller's TimeZone or DateStyle they could name another instant. Pinned here.
ALTER FUNCTION adpipe_ensure_partition(date) SET TimeZone = 'UTC';
ALTER FUNCTION adpipe_ensure_partition(date) SET DateStyle = 'ISO, YMD';

-- Hours no load will ever fill (an outage of the ad API with nothing to fetch afterwards),
-- accepted by an operator (`make accept-gap`, as the owner) so reconcile stops naming them.
-- Nobody but the owner writes here; reconcile reads it.
CREATE TABLE accepted_gaps (
    gap_id       bigserial   PRIMARY KEY,
    gap_start    timestamptz NOT NULL,
    gap_end      timestamptz NOT NULL,
    reason       text        NOT NULL CHECK (reason <> ''),
    accepted_by  text        NOT NULL DEFAULT current_user,
    accepted_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (gap_end > gap_start)
);
REVOKE ALL ON accepted_gaps FROM PUBLIC;
GRANT SELECT ON accepted_gaps TO adpipe_reader;
