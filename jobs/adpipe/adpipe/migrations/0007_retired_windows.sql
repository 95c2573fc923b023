-- Windows whose backups reconcile no longer counts: a window off the grid, or one that
-- overlaps another (from before the jobs refused such windows), would count its records a
-- second time. `archive retire` records it here, as the archiver, with the reason; the
-- backup objects and the rows stay where they are (backups are never deleted), and the
-- load, the extract and reconcile leave the window out from then on. Never changed after.
CREATE TABLE retired_windows (
    retire_id     bigserial   PRIMARY KEY,
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    reason        text        NOT NULL CHECK (reason <> ''),
    retired_by    text        NOT NULL DEFAULT current_user,
    retired_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (window_start, window_end),
    CHECK (window_end > window_start)
);
REVOKE ALL ON retired_windows FROM PUBLIC;
GRANT SELECT, INSERT ON retired_windows TO adpipe_archiver;
GRANT USAGE ON SEQUENCE retired_windows_retire_id_seq TO adpipe_archiver;
GRANT SELECT ON retired_windows TO adpipe_loader, adpipe_reader;
-- retire checks the window was loaded, and which loaded windows it overlaps
GRANT SELECT ON load_runs TO adpipe_archiver;
