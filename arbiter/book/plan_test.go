package book

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/bwxchange/bwx/arbiter/store"
)

// The queries that run against the whole history (a member's events, its
// latest notice, the open orders at start) must seek their index, not
// scan: the schema's indexes are shaped for the book's commits (migration
// 0009), and a query written slightly differently silently stops using
// them.
func TestQueriesUseTheirIndexes(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "plan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct{ query, want string }{
		{eventsInBlock, "SEARCH events USING INDEX events_member (<expr>=? AND member_id=? AND seq>?)"},
		{lastNotice(2), "SEARCH e USING INDEX events_notice (member_id=?)"},
		{selectOrder + " WHERE " + openCond, "SEARCH o USING INDEX orders_open (status=?)"},
	} {
		plan, err := db.Plan(c.query, 1, 2, 3, 4, 5)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan, c.want) {
			t.Errorf("%s\nplan:\n%s\nwant a step %q", c.query, plan, c.want)
		}
	}
}

// TestCreditQueriesUseTheirIndexes: settlement's credit reads of trades
// and orders seek their index (member, then id) instead of scanning the
// member's history (moved from settle's TestCreditCacheQueryPlans).
func TestCreditQueriesUseTheirIndexes(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "plan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		q    string
		args []any
		want []string
	}{
		{buyTradesAfterSQL, []any{1, 10}, []string{"SEARCH trades USING INDEX trades_buyer (buyer_id=? AND rowid>?)"}},
		// The report's open buys: the member's orders, not every open one.
		{openBuysSQL, []any{1}, []string{"SEARCH orders USING INDEX sqlite_autoindex_orders_1 (member_id=?)"}},
	} {
		p, err := db.Plan(c.q, c.args...)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(p, w) {
				t.Errorf("plan of %s\n%s\nlacks %q", c.q, p, w)
			}
		}
		if strings.Contains(p, "SCAN ledger") || strings.Contains(p, "SCAN trades") {
			t.Errorf("plan of %s scans:\n%s", c.q, p)
		}
	}
}
