-- The path quality measured when a trade was made (claim 18): what the
-- quality matrix held for the buyer through the seller toward the traded
-- prefixes. All NULL: nothing fresh was measured at match time.
ALTER TABLE trades ADD COLUMN latency_us INTEGER;
ALTER TABLE trades ADD COLUMN jitter_us INTEGER;
ALTER TABLE trades ADD COLUMN loss_ppm INTEGER;
ALTER TABLE trades ADD COLUMN as_hops INTEGER;
ALTER TABLE trades ADD COLUMN quality_samples INTEGER;

-- Settlement notifications share the members' event log: use outside a
-- trade's capacity (about a trade, with its figures in detail) and credit
-- warnings (about neither a trade nor an order). dedup, when set, makes
-- the same notification land once per member however often it is sent.
-- sqlite cannot change a CHECK in place: rebuild, keeping every seq.
CREATE TABLE events_new (
	seq        INTEGER PRIMARY KEY,
	member_id  INTEGER NOT NULL REFERENCES members (id),
	type       INTEGER NOT NULL,
	trade_id   INTEGER REFERENCES trades (id),
	order_id   INTEGER REFERENCES orders (id),
	created_us INTEGER NOT NULL,
	detail     TEXT,
	dedup      TEXT,
	CHECK (trade_id IS NULL OR order_id IS NULL)
);
INSERT INTO events_new (seq, member_id, type, trade_id, order_id, created_us)
SELECT seq, member_id, type, trade_id, order_id, created_us FROM events;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE INDEX events_member ON events (member_id, seq);
CREATE UNIQUE INDEX events_dedup ON events (member_id, dedup) WHERE dedup IS NOT NULL;
