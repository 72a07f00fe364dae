-- What the route server really delivered (arbiter/delivery Record): per
-- trade and buyer session (the buyer's router address), intervals of one
-- state, with why a trade was not delivered and whom that falls on
-- ('buyer' or 'seller'). An open interval (to_us NULL) lasts until the
-- next change on that session.
CREATE TABLE deliveries (
	id        INTEGER PRIMARY KEY,
	trade_id  INTEGER NOT NULL REFERENCES trades (id),
	session   TEXT    NOT NULL,
	from_us   INTEGER NOT NULL,
	to_us     INTEGER CHECK (to_us IS NULL OR to_us >= from_us),
	delivered INTEGER NOT NULL CHECK (delivered IN (0, 1)),
	reason    TEXT    NOT NULL DEFAULT '',
	cause     TEXT    NOT NULL DEFAULT '' CHECK (cause IN ('', 'buyer', 'seller'))
);
CREATE INDEX deliveries_trade ON deliveries (trade_id, from_us);
CREATE UNIQUE INDEX deliveries_open ON deliveries (trade_id, session) WHERE to_us IS NULL;
