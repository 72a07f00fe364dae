package settle

import "context"

// The credit cache's insides, for credit_test.go.
const (
	CreditLimitSQL       = creditLimitSQL
	CreditLedgerSQL      = creditLedgerSQL
	CreditRecomputeEvery = creditRecomputeEvery
)

// CachedCredit is the figure CheckCreditWith decides on (Limited false and no
// figures when no limit applies).
func CachedCredit(s *Settlement, ctx context.Context, asn uint32, pending []Commitment) (Credit, error) {
	st, err := s.cachedCredit(ctx, asn, pending)
	return st.Credit, err
}

// CreditRowsRead is how many ledger and trade rows the cache's delta
// readers have read so far.
func CreditRowsRead(s *Settlement) (ledger, trades int64) {
	return s.credit.ledgerRows.Load(), s.credit.tradeRows.Load()
}

// CreditFromScratch is the full computation CheckCreditWith's cache must equal.
func CreditFromScratch(s *Settlement, ctx context.Context, asn uint32, pending []Commitment) (Credit, error) {
	return s.creditWith(ctx, asn, pending)
}

// Committed is the charge credit counts for a commitment.
var Committed = committed

// CreditLimitReads is how many times the cache has read a member's limit
// from the store.
func CreditLimitReads(s *Settlement) int64 { return s.credit.limitReads.Load() }

// AfterLimitRead has f run between the cache's read of a limit and its
// keeping of it.
func AfterLimitRead(s *Settlement, f func()) { s.credit.afterLimitRead = f }
