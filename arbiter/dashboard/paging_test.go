package dashboard

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// The trades table pages (issue 22): tradesPageSize rows at most, newest
// first, with older and newer links keyed on trade ids, so that a trade
// added meanwhile shifts nothing.
func TestTradesPage(t *testing.T) {
	f := newFixture(t)
	// 450 more trades, copies of the fixture's first.
	var cols []string
	rows, err := f.db.Query("SELECT name FROM pragma_table_info('trades') WHERE name != 'id'")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		rows.Scan(&c)
		cols = append(cols, c)
	}
	rows.Close()
	list := strings.Join(cols, ", ")
	for range 450 {
		if _, err := f.db.Exec(fmt.Sprintf("INSERT INTO trades (%s) SELECT %s FROM trades WHERE id = ?", list, list), f.tradeA); err != nil {
			t.Fatal(err)
		}
	}
	var total, newest int
	if err := f.db.QueryRow("SELECT count(*), max(id) FROM trades").Scan(&total, &newest); err != nil {
		t.Fatal(err)
	}
	h := f.server(t, false).Handler(LocalOperator)
	row := regexp.MustCompile(`<td class="num">(\d+)</td><td>AS`)
	older := regexp.MustCompile(`href="/trades\?before=(\d+)"`)
	newer := regexp.MustCompile(`href="/trades\?after=(\d+)"`)
	seen := map[string]bool{}
	path := "/trades"
	var pages int
	for path != "" {
		body := mustGet(t, h, path)
		ids := row.FindAllStringSubmatch(body, -1)
		if len(ids) == 0 || len(ids) > tradesPageSize {
			t.Fatalf("%s: %d rows", path, len(ids))
		}
		if pages == 0 && ids[0][1] != fmt.Sprint(newest) {
			t.Fatalf("first page starts at trade %s, want the newest, %d", ids[0][1], newest)
		}
		if pages > 0 && !newer.MatchString(body) {
			t.Errorf("%s has no link to newer trades", path)
		}
		for _, id := range ids {
			if seen[id[1]] {
				t.Fatalf("trade %s on two pages", id[1])
			}
			seen[id[1]] = true
		}
		pages++
		path = ""
		if m := older.FindStringSubmatch(body); m != nil {
			path = "/trades?before=" + m[1]
		}
		if pages == 2 {
			// Back to the first page from the second.
			m := newer.FindStringSubmatch(body)
			if back := row.FindAllStringSubmatch(mustGet(t, h, "/trades?after="+m[1]), -1); len(back) != tradesPageSize || back[0][1] != fmt.Sprint(newest) {
				t.Fatalf("newer from page 2: %d rows from %s", len(back), back[0][1])
			}
		}
	}
	if len(seen) != total || pages != (total+tradesPageSize-1)/tradesPageSize {
		t.Fatalf("%d trades on %d pages, want %d", len(seen), pages, total)
	}
	if res, _ := get(t, h, "/trades?before=x"); res.StatusCode != 400 {
		t.Fatalf("before=x: %d, want 400", res.StatusCode)
	}
}
