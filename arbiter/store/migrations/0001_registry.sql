-- The trade route registry: members, their switch ports, routers and prefixes.
CREATE TABLE members (
	id         INTEGER PRIMARY KEY,
	asn        INTEGER NOT NULL UNIQUE CHECK (asn BETWEEN 1 AND 4294967295),
	name       TEXT    NOT NULL CHECK (name <> ''),
	created_us INTEGER NOT NULL
);

CREATE TABLE ports (
	id           INTEGER PRIMARY KEY,
	member_id    INTEGER NOT NULL UNIQUE REFERENCES members (id) ON DELETE CASCADE,
	name         TEXT    NOT NULL,
	capacity_bps INTEGER NOT NULL CHECK (capacity_bps > 0)
);

CREATE TABLE routers (
	id        INTEGER PRIMARY KEY,
	member_id INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
	address   TEXT    NOT NULL UNIQUE
);
CREATE INDEX routers_member ON routers (member_id);

CREATE TABLE prefixes (
	id         INTEGER PRIMARY KEY,
	member_id  INTEGER NOT NULL REFERENCES members (id) ON DELETE CASCADE,
	prefix     TEXT    NOT NULL,
	route_type INTEGER NOT NULL CHECK (route_type BETWEEN 1 AND 4),
	origin_asn INTEGER NOT NULL,
	UNIQUE (member_id, prefix)
);

-- Every certificate the exchange CA signed, for audit and later revocation.
CREATE TABLE certificates (
	serial       TEXT    PRIMARY KEY,
	member_id    INTEGER REFERENCES members (id) ON DELETE CASCADE,
	identity     TEXT    NOT NULL,
	not_after_us INTEGER NOT NULL,
	created_us   INTEGER NOT NULL
);
