-- Where a row goes when it leaves: one row per archive object in s3://ad-data/archive/,
-- committed in the same transaction that deletes the object's rows from ad_impressions.
CREATE TABLE archive_manifest (
    archive_id    bigserial   PRIMARY KEY,
    object_key    text        NOT NULL,
    shown_date    date        NOT NULL,
    rows          bigint      NOT NULL CHECK (rows > 0),
    bytes         bigint      NOT NULL,
    sha256        char(64)    NOT NULL,
    ids_sha256    char(64)    NOT NULL,
    min_shown_at  timestamptz NOT NULL,
    max_shown_at  timestamptz NOT NULL,
    run_date      date        NOT NULL,
    archived_at   timestamptz NOT NULL DEFAULT now(),
    restored_at   timestamptz
);
CREATE INDEX archive_manifest_day ON archive_manifest (shown_date);
-- an object is listed once while archived; a restored row stays for the audit trail
CREATE UNIQUE INDEX archive_manifest_live_key ON archive_manifest (object_key)
    WHERE restored_at IS NULL;
