-- Third-party measurements (RIPE Atlas, claim 10) have no reporting
-- member: the source is explicit, and reporter_id is set exactly for agent
-- measurements. A fake "Atlas" member would have leaked into the registry,
-- the book and the route server; a NULL reporter can never be mistaken for
-- a member's own vantage. sqlite cannot drop NOT NULL in place: rebuild.
CREATE TABLE measurements_new (
	id              INTEGER PRIMARY KEY,
	source          TEXT    NOT NULL DEFAULT 'agent' CHECK (source IN ('agent', 'atlas')),
	reporter_id     INTEGER REFERENCES members (id),
	idempotency_key TEXT    NOT NULL,
	via_id          INTEGER NOT NULL REFERENCES members (id),
	prefix          TEXT    NOT NULL,
	target          TEXT    NOT NULL,
	measured_us     INTEGER NOT NULL,
	latency_us      INTEGER NOT NULL CHECK (latency_us >= 0),
	jitter_us       INTEGER NOT NULL CHECK (jitter_us >= 0),
	loss_ppm        INTEGER NOT NULL CHECK (loss_ppm BETWEEN 0 AND 1000000),
	as_hops         INTEGER NOT NULL CHECK (as_hops >= 0),
	ip_hops         INTEGER NOT NULL CHECK (ip_hops >= 0),
	probes_sent     INTEGER NOT NULL CHECK (probes_sent >= 0),
	CHECK ((source = 'agent') = (reporter_id IS NOT NULL)),
	UNIQUE (reporter_id, idempotency_key)
);
INSERT INTO measurements_new (id, source, reporter_id, idempotency_key, via_id, prefix, target, measured_us,
	latency_us, jitter_us, loss_ppm, as_hops, ip_hops, probes_sent)
SELECT id, 'agent', reporter_id, idempotency_key, via_id, prefix, target, measured_us,
	latency_us, jitter_us, loss_ppm, as_hops, ip_hops, probes_sent FROM measurements;
DROP TABLE measurements;
ALTER TABLE measurements_new RENAME TO measurements;
CREATE INDEX measurements_path ON measurements (via_id, prefix, measured_us);
-- Third-party results are deduplicated per source by their own key.
CREATE UNIQUE INDEX measurements_third_party ON measurements (source, idempotency_key) WHERE reporter_id IS NULL;
