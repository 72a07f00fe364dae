-- The order database, trades and the port capacity each trade reserves.
CREATE TABLE orders (
	id               INTEGER PRIMARY KEY,
	member_id        INTEGER NOT NULL REFERENCES members (id),
	client_order_id  TEXT,
	side             INTEGER NOT NULL CHECK (side IN (1, 2)),
	dest_prefix      TEXT,
	dest_origin_asn  INTEGER,
	dest_route_type  INTEGER,
	protocol         INTEGER NOT NULL,
	capacity_bps     INTEGER NOT NULL CHECK (capacity_bps > 0),
	min_block_bps    INTEGER NOT NULL CHECK (min_block_bps > 0),
	price_micros     INTEGER NOT NULL CHECK (price_micros >= 0),
	max_latency_us   INTEGER,
	max_jitter_us    INTEGER,
	max_loss_ppm     INTEGER,
	max_as_hops      INTEGER,
	allow_unverified INTEGER NOT NULL DEFAULT 0,
	traffic_type     INTEGER NOT NULL,
	start_us         INTEGER NOT NULL,
	end_us           INTEGER NOT NULL CHECK (end_us > start_us),
	order_type       INTEGER NOT NULL,
	ranking          INTEGER NOT NULL DEFAULT 0,
	price_weight     INTEGER NOT NULL DEFAULT 0,
	single_seller    INTEGER NOT NULL DEFAULT 0,
	priority         INTEGER NOT NULL,
	status           INTEGER NOT NULL,
	filled_bps       INTEGER NOT NULL DEFAULT 0 CHECK (filled_bps BETWEEN 0 AND capacity_bps),
	created_us       INTEGER NOT NULL,
	updated_us       INTEGER NOT NULL,
	CHECK ((dest_prefix IS NOT NULL) + (dest_origin_asn IS NOT NULL) + (dest_route_type IS NOT NULL) = 1),
	UNIQUE (member_id, client_order_id)
);
CREATE INDEX orders_open ON orders (status);

-- A trade holds its capacity on both members' switch ports for its
-- delivery period (claim 9): the port load is derived from these rows.
CREATE TABLE trades (
	id            INTEGER PRIMARY KEY,
	buy_order_id  INTEGER NOT NULL REFERENCES orders (id),
	sell_order_id INTEGER NOT NULL REFERENCES orders (id),
	buyer_id      INTEGER NOT NULL REFERENCES members (id),
	seller_id     INTEGER NOT NULL REFERENCES members (id),
	-- The traded prefixes, comma-separated, as resolved at match time.
	prefixes      TEXT    NOT NULL CHECK (prefixes <> ''),
	protocol      INTEGER NOT NULL,
	capacity_bps  INTEGER NOT NULL CHECK (capacity_bps > 0),
	price_micros  INTEGER NOT NULL,
	start_us      INTEGER NOT NULL,
	end_us        INTEGER NOT NULL CHECK (end_us > start_us),
	cancelled     INTEGER NOT NULL DEFAULT 0,
	created_us    INTEGER NOT NULL
);
CREATE INDEX trades_buyer ON trades (buyer_id);
CREATE INDEX trades_seller ON trades (seller_id);
CREATE INDEX trades_end ON trades (end_us);

-- Per-member event log behind the trade event stream; seq orders it. An
-- event is about a trade or about one of the member's orders.
CREATE TABLE events (
	seq        INTEGER PRIMARY KEY,
	member_id  INTEGER NOT NULL REFERENCES members (id),
	type       INTEGER NOT NULL,
	trade_id   INTEGER REFERENCES trades (id),
	order_id   INTEGER REFERENCES orders (id),
	created_us INTEGER NOT NULL,
	CHECK ((trade_id IS NULL) <> (order_id IS NULL))
);
CREATE INDEX events_member ON events (member_id, seq);
