-- Where a row is stored: ad_impressions, range-partitioned by shown_at, one partition a day
-- (ad_impressions_YYYYMMDD, created on demand by the load job), and load_runs, one audit row
-- for every load of a window.
CREATE TABLE ad_impressions (
    impression_id  uuid        NOT NULL,
    ad_id          bigint      NOT NULL,
    campaign_id    bigint      NOT NULL,
    advertiser_id  bigint      NOT NULL,
    placement      text        NOT NULL,
    device         text        NOT NULL,
    country        char(2)     NOT NULL,
    shown_at       timestamptz NOT NULL,
    cost_micros    bigint      NOT NULL CHECK (cost_micros >= 0),
    currency       char(3)     NOT NULL,
    clicked        boolean     NOT NULL,
    load_run_id    bigint      NOT NULL,
    loaded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (impression_id, shown_at)
) PARTITION BY RANGE (shown_at);

CREATE TABLE load_runs (
    load_run_id      bigserial   PRIMARY KEY,
    window_start     timestamptz NOT NULL,
    window_end       timestamptz NOT NULL,
    manifest_key     text        NOT NULL,
    manifest_sha256  char(64)    NOT NULL,
    pages            integer     NOT NULL,
    received         bigint      NOT NULL,
    valid            bigint      NOT NULL,
    rejected         bigint      NOT NULL,
    duplicates       bigint      NOT NULL,
    rows_written     bigint      NOT NULL,
    rows_replaced    bigint      NOT NULL,
    quarantine_key   text,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (window_end > window_start)
);
CREATE INDEX load_runs_window ON load_runs (window_start, window_end);
