-- Settlement (claims 2, 19): runs, the invoices they produced and the
-- append-only ledger. A run and everything it writes commit together.

-- One row per settlement of a period; seq 0 is the first run, each
-- correction of the period takes the next seq.
CREATE TABLE settlement_runs (
	id              INTEGER PRIMARY KEY,
	period_start_us INTEGER NOT NULL,
	period_end_us   INTEGER NOT NULL CHECK (period_end_us > period_start_us),
	seq             INTEGER NOT NULL CHECK (seq >= 0),
	policy          TEXT    NOT NULL,
	exchange        TEXT    NOT NULL, -- the exchange's statement, JSON
	created_us      INTEGER NOT NULL,
	UNIQUE (period_start_us, seq)
);

-- The invoice documents (JSON) each run issued; a correction run issues
-- the revised invoice of every member whose invoice changed.
CREATE TABLE invoices (
	id              INTEGER PRIMARY KEY,
	run_id          INTEGER NOT NULL REFERENCES settlement_runs (id),
	member_id       INTEGER NOT NULL REFERENCES members (id),
	period_start_us INTEGER NOT NULL,
	net_micros      INTEGER NOT NULL,
	document        TEXT    NOT NULL,
	UNIQUE (run_id, member_id)
);
CREATE INDEX invoices_member ON invoices (member_id, period_start_us, run_id);

-- The ledger: amounts in micro-units from the member's side (negative: the
-- member owes). member_id NULL is the exchange's own account (fee income).
-- kind: 1 committed, 2 overage, 3 SLA credit, 4 fee, 5 payment.
-- Entries of one run sum to zero; a correction is a new entry.
CREATE TABLE ledger (
	id              INTEGER PRIMARY KEY,
	run_id          INTEGER REFERENCES settlement_runs (id),
	member_id       INTEGER REFERENCES members (id),
	period_start_us INTEGER,
	trade_id        INTEGER REFERENCES trades (id),
	kind            INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 5),
	amount_micros   INTEGER NOT NULL,
	correction      INTEGER NOT NULL DEFAULT 0 CHECK (correction IN (0, 1)),
	memo            TEXT    NOT NULL DEFAULT '',
	created_us      INTEGER NOT NULL
);
CREATE INDEX ledger_member ON ledger (member_id, id);
CREATE INDEX ledger_period ON ledger (period_start_us, member_id, trade_id, kind);

CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only: write a correction entry instead of updating'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only: write a correction entry instead of deleting'); END;
CREATE TRIGGER invoices_no_update BEFORE UPDATE ON invoices
BEGIN SELECT RAISE(ABORT, 'invoices are append-only: run a correction'); END;
CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices
BEGIN SELECT RAISE(ABORT, 'invoices are append-only: run a correction'); END;
CREATE TRIGGER settlement_runs_no_update BEFORE UPDATE ON settlement_runs
BEGIN SELECT RAISE(ABORT, 'settlement runs are append-only'); END;
CREATE TRIGGER settlement_runs_no_delete BEFORE DELETE ON settlement_runs
BEGIN SELECT RAISE(ABORT, 'settlement runs are append-only'); END;

-- Per-member credit limit set by the operator; members without a row get
-- the configured default.
CREATE TABLE credit_limits (
	member_id    INTEGER PRIMARY KEY REFERENCES members (id),
	limit_micros INTEGER NOT NULL CHECK (limit_micros >= 0),
	updated_us   INTEGER NOT NULL
);

-- Slots where the buyer's and the seller's figures differ by more than
-- their sampling error allows, with both figures and the one billed; kept
-- apart from the invoice documents, which carry the count per line.
CREATE TABLE settlement_disputes (
	run_id         INTEGER NOT NULL REFERENCES settlement_runs (id),
	trade_id       INTEGER NOT NULL REFERENCES trades (id),
	slot_us        INTEGER NOT NULL,
	buyer_bps      INTEGER NOT NULL,
	buyer_samples  INTEGER NOT NULL,
	seller_bps     INTEGER NOT NULL,
	seller_samples INTEGER NOT NULL,
	used_bps       INTEGER NOT NULL,
	policy         TEXT    NOT NULL,
	PRIMARY KEY (run_id, trade_id, slot_us)
) WITHOUT ROWID;
CREATE TRIGGER settlement_disputes_no_update BEFORE UPDATE ON settlement_disputes
BEGIN SELECT RAISE(ABORT, 'disputes are append-only'); END;
CREATE TRIGGER settlement_disputes_no_delete BEFORE DELETE ON settlement_disputes
BEGIN SELECT RAISE(ABORT, 'disputes are append-only'); END;
