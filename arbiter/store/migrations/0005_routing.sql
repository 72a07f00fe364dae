-- Routing policy per registered prefix and the routes members really
-- announce to the route server (claim 22).

-- Who may buy the prefix: a space-separated list of member ASNs; empty
-- means every member. prepends is how many times the seller's ASN is
-- prepended to the delivered path; no_export tags it NO_EXPORT (the route
-- server always does today, so it defaults on).
ALTER TABLE prefixes ADD COLUMN allowed_buyers TEXT    NOT NULL DEFAULT '';
ALTER TABLE prefixes ADD COLUMN prepends       INTEGER NOT NULL DEFAULT 0 CHECK (prepends BETWEEN 0 AND 10);
ALTER TABLE prefixes ADD COLUMN no_export      INTEGER NOT NULL DEFAULT 1 CHECK (no_export IN (0, 1));

-- One row per route a member router announces now, with the route server's
-- verdict. The arbiter keeps it in step with its BGP sessions and resets it
-- on start; it is a view of live state, not history.
CREATE TABLE announced_routes (
	member_asn INTEGER NOT NULL,
	neighbor   TEXT    NOT NULL,
	prefix     TEXT    NOT NULL,
	next_hop   TEXT    NOT NULL,
	as_path    TEXT    NOT NULL, -- space-separated ASNs
	origin_asn INTEGER NOT NULL,
	accepted   INTEGER NOT NULL CHECK (accepted IN (0, 1)),
	reason     TEXT    NOT NULL DEFAULT '',
	since_us   INTEGER NOT NULL,
	PRIMARY KEY (neighbor, prefix)
);
CREATE INDEX announced_routes_member ON announced_routes (member_asn, prefix);
