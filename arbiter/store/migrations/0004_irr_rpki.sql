-- Prefix ownership data the route server filters against: IRR route
-- objects and RPKI ROAs, each replaced whole by an import.

-- route and route6 objects; source is the IRR (RIPE, RADB, ...), and an
-- import replaces every object of the sources it brings.
CREATE TABLE irr_routes (
	id     INTEGER PRIMARY KEY,
	source TEXT    NOT NULL CHECK (source <> ''),
	prefix TEXT    NOT NULL,
	origin INTEGER NOT NULL CHECK (origin BETWEEN 1 AND 4294967295),
	mnt_by TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX irr_routes_source ON irr_routes (source);

-- Validated ROA payloads from a relying party (rpki-client, Routinator);
-- an import replaces them all.
CREATE TABLE rpki_roas (
	id         INTEGER PRIMARY KEY,
	prefix     TEXT    NOT NULL,
	max_length INTEGER NOT NULL CHECK (max_length BETWEEN 0 AND 128),
	asn        INTEGER NOT NULL CHECK (asn BETWEEN 0 AND 4294967295),
	ta         TEXT    NOT NULL DEFAULT ''
);

-- One row per imported set, committed with it; a failed import leaves a row
-- with its error and the old data.
CREATE TABLE registry_imports (
	id          INTEGER PRIMARY KEY,
	kind        TEXT    NOT NULL CHECK (kind IN ('irr', 'rpki')),
	source      TEXT    NOT NULL,
	files       TEXT    NOT NULL,
	started_us  INTEGER NOT NULL,
	finished_us INTEGER NOT NULL,
	objects     INTEGER NOT NULL, -- objects read in the whole import
	malformed   INTEGER NOT NULL, -- of those, refused
	accepted    INTEGER NOT NULL, -- stored in this set
	previous    INTEGER NOT NULL, -- the set's size before
	error       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX registry_imports_kind ON registry_imports (kind, source, id);
