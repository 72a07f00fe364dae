-- Measurements and usage samples that agents report; the idempotency key
-- makes a repeated report harmless.
CREATE TABLE measurements (
	id              INTEGER PRIMARY KEY,
	reporter_id     INTEGER NOT NULL REFERENCES members (id),
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
	UNIQUE (reporter_id, idempotency_key)
);
CREATE INDEX measurements_path ON measurements (via_id, prefix, measured_us);

CREATE TABLE usage_samples (
	id              INTEGER PRIMARY KEY,
	reporter_id     INTEGER NOT NULL REFERENCES members (id),
	idempotency_key TEXT    NOT NULL,
	trade_id        INTEGER NOT NULL REFERENCES trades (id),
	role            INTEGER NOT NULL CHECK (role IN (1, 2)),
	start_us        INTEGER NOT NULL,
	end_us          INTEGER NOT NULL CHECK (end_us > start_us),
	bps             INTEGER NOT NULL CHECK (bps >= 0),
	sample_count    INTEGER NOT NULL CHECK (sample_count >= 0),
	UNIQUE (reporter_id, idempotency_key)
);
CREATE INDEX usage_trade ON usage_samples (trade_id, start_us);
