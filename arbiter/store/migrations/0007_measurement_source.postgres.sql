-- PostgreSQL's version of 0007_measurement_source.sql: the column's NOT NULL
-- is dropped in place instead of rebuilding the table.
ALTER TABLE measurements ALTER COLUMN reporter_id DROP NOT NULL;
ALTER TABLE measurements ADD COLUMN source TEXT NOT NULL DEFAULT 'agent' CHECK (source IN ('agent', 'atlas'));
ALTER TABLE measurements ADD CHECK ((source = 'agent') = (reporter_id IS NOT NULL));
-- Third-party results are deduplicated per source by their own key.
CREATE UNIQUE INDEX measurements_third_party ON measurements (source, idempotency_key) WHERE reporter_id IS NULL;
