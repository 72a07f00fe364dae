-- PostgreSQL's version of 0008_trade_quality.sql: the events check is
-- replaced in place instead of rebuilding the table.
ALTER TABLE trades ADD COLUMN latency_us BIGINT;
ALTER TABLE trades ADD COLUMN jitter_us BIGINT;
ALTER TABLE trades ADD COLUMN loss_ppm BIGINT;
ALTER TABLE trades ADD COLUMN as_hops BIGINT;
ALTER TABLE trades ADD COLUMN quality_samples BIGINT;

ALTER TABLE events ADD COLUMN detail TEXT;
ALTER TABLE events ADD COLUMN dedup TEXT;
ALTER TABLE events DROP CONSTRAINT events_check;
ALTER TABLE events ADD CONSTRAINT events_check CHECK (trade_id IS NULL OR order_id IS NULL);
CREATE UNIQUE INDEX events_dedup ON events (member_id, dedup) WHERE dedup IS NOT NULL;
