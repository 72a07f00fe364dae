-- A member is active, suspended (its resting orders cancelled, new orders
-- refused, its trades run on) or removed (its certificates revoked, its
-- orders cancelled, its trades ended at the removal). The row stays: the
-- invoices and the ledger refer to it. membership_us is when it last
-- changed. (Not "status": orders have one, and queries joining members use
-- theirs unqualified.)
ALTER TABLE members ADD COLUMN membership TEXT NOT NULL DEFAULT 'active' CHECK (membership IN ('active', 'suspended', 'removed'));
ALTER TABLE members ADD COLUMN membership_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE members ADD COLUMN membership_us INTEGER;

-- A trade ended before its contracted end (a party was removed): end_us
-- is when delivery really ended, and settlement bills up to it;
-- contract_end_us is the end agreed and end_reason says why. Both NULL
-- for a trade that runs its term.
ALTER TABLE trades ADD COLUMN contract_end_us INTEGER;
ALTER TABLE trades ADD COLUMN end_reason TEXT;
