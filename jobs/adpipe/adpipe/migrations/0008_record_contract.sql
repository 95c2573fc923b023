-- The table holds what the record contract (adpipe/record.py) says of each field, as
-- `Field.column_sql` renders it: ids and amounts are never negative, labels are 1 to 64
-- characters. The load checks all of it before a row is written; these hold for every
-- other way in too (restore, adopt, an owner's hand). tests/integration/test_record_contract.py
-- compares the table with the contract, column by column.
ALTER TABLE ad_impressions
    ADD CONSTRAINT ad_impressions_ad_id_check CHECK (ad_id >= 0),
    ADD CONSTRAINT ad_impressions_campaign_id_check CHECK (campaign_id >= 0),
    ADD CONSTRAINT ad_impressions_advertiser_id_check CHECK (advertiser_id >= 0),
    ADD CONSTRAINT ad_impressions_placement_check CHECK (char_length(placement) BETWEEN 1 AND 64),
    ADD CONSTRAINT ad_impressions_device_check CHECK (char_length(device) BETWEEN 1 AND 64);

-- Each archive object's record contract version (adpipe.record.VERSION when it was written):
-- an object written before a field was added lacks its column, and restore and make query
-- fill it with NULL. Every object before this migration was written at version 1.
ALTER TABLE archive_manifest ADD COLUMN schema_version integer NOT NULL DEFAULT 1
    CHECK (schema_version >= 1);
