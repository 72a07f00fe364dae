package pages

import (
	"context"
	"strconv"
	"testing"
)

type page struct {
	items []int
	next  string
}

func (p page) GetNextPageToken() string { return p.next }

// server pages 0..n-1, size items a page (0: 3).
func server(n int, calls *int) Call[page] {
	return func(_ context.Context, token string, size int32) (page, error) {
		*calls++
		if size == 0 {
			size = 3
		}
		from := 0
		if token != "" {
			from, _ = strconv.Atoi(token)
		}
		var p page
		for i := from; i < n && len(p.items) < int(size); i++ {
			p.items = append(p.items, i)
		}
		if end := from + len(p.items); end < n {
			p.next = strconv.Itoa(end)
		}
		return p, nil
	}
}

func TestCollectReadsEveryPage(t *testing.T) {
	calls := 0
	got, err := Collect(context.Background(), server(10, &calls), func(p page) []int { return p.items }, 0)
	if err != nil || len(got) != 10 || got[9] != 9 || calls != 4 {
		t.Fatalf("got %v %v in %d calls, want 0..9 in 4", got, err, calls)
	}
}

func TestCollectStopsAtTheLimit(t *testing.T) {
	calls := 0
	got, err := Collect(context.Background(), server(10, &calls), func(p page) []int { return p.items }, 4)
	if err != nil || len(got) != 4 || got[3] != 3 || calls != 1 {
		t.Fatalf("got %v %v in %d calls, want 0..3 in one call of 4", got, err, calls)
	}
}

func TestEachRefusesALoop(t *testing.T) {
	loop := func(context.Context, string, int32) (page, error) { return page{items: []int{1}, next: "again"}, nil }
	if _, err := Collect(context.Background(), loop, func(p page) []int { return p.items }, 0); err == nil {
		t.Fatal("a server that repeats its token was read forever")
	}
}
