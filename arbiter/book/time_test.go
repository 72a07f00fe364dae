package book_test

import (
	"errors"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/shared/invalid"
)

// Time in the book: an order's effective start is the later of its start
// and now; periods are compared from there, and a trade starts when it is
// made, never before.

func startingAt(s book.Spec, start time.Time) book.Spec {
	s.Start = start
	return s
}

func TestTimeInTheBook(t *testing.T) {
	const day = 24 * time.Hour
	type step struct {
		at    time.Duration // after now
		asn   uint32
		spec  func() book.Spec
		field string // a refusal naming this field is expected
	}
	cases := []struct {
		name  string
		steps []step
		// wake, if set, is when the engine is woken after the steps.
		wake       time.Duration
		trades     int
		tradeAt    time.Duration // every trade's start, after now
		tradePrice int64
	}{
		{
			name: "a buy that rested an hour trades from the match, not from its start",
			steps: []step{
				{0, 64510, func() book.Spec { return startingAt(spec(book.Buy, "198.51.100.0/24", Gbps, 7), now) }, ""},
				{time.Hour, 64501, func() book.Spec { return startingAt(spec(book.Sell, "198.51.100.0/24", Gbps, 5), now.Add(time.Hour)) }, ""},
			},
			trades: 1, tradeAt: time.Hour, tradePrice: 7,
		},
		{
			name: "a sell placed now matches a buy that started resting earlier (the book is not left crossed)",
			steps: []step{
				{0, 64510, func() book.Spec { return startingAt(spec(book.Buy, "198.51.100.0/24", Gbps, 50), now) }, ""},
				{5 * time.Second, 64501, func() book.Spec {
					return startingAt(spec(book.Sell, "198.51.100.0/24", Gbps, 40), now.Add(5*time.Second))
				}, ""},
			},
			trades: 1, tradeAt: 5 * time.Second, tradePrice: 50,
		},
		{
			name: "a buy placed now takes a sell whose start has passed",
			steps: []step{
				{0, 64501, func() book.Spec { return startingAt(spec(book.Sell, "198.51.100.0/24", Gbps, 5), now) }, ""},
				{day, 64510, func() book.Spec { return startingAt(spec(book.Buy, "198.51.100.0/24", Gbps, 7), now.Add(day)) }, ""},
			},
			trades: 1, tradeAt: day, tradePrice: 5,
		},
		{
			name: "a future buy covered by a started sell trades from its own start",
			steps: []step{
				{0, 64501, func() book.Spec { return startingAt(spec(book.Sell, "198.51.100.0/24", Gbps, 5), now) }, ""},
				{time.Hour, 64510, func() book.Spec { return startingAt(spec(book.Buy, "198.51.100.0/24", Gbps, 7), now.Add(2*day)) }, ""},
			},
			trades: 1, tradeAt: 2 * day, tradePrice: 5,
		},
		{
			name: "a resting sell whose start arrives trades with an earlier buy at the wake, at the first-rested price",
			steps: []step{
				{0, 64501, func() book.Spec { return startingAt(spec(book.Sell, "198.51.100.0/24", Gbps, 5), now.Add(day)) }, ""},
				{time.Hour, 64510, func() book.Spec { return startingAt(spec(book.Buy, "198.51.100.0/24", Gbps, 7), now.Add(time.Hour)) }, ""},
			},
			wake: day, trades: 1, tradeAt: day, tradePrice: 5,
		},
		{
			name: "an order starting a month ago is refused",
			steps: []step{
				{0, 64501, func() book.Spec { return startingAt(spec(book.Sell, "198.51.100.0/24", Gbps, 5), now) }, ""},
				{time.Hour, 64510, func() book.Spec {
					return startingAt(spec(book.Buy, "198.51.100.0/24", Gbps, 7), now.AddDate(0, -1, 0))
				}, "spec.delivery_start"},
				{time.Hour, 64502, func() book.Spec {
					return startingAt(spec(book.Sell, "198.51.100.0/24", Gbps, 7), now.AddDate(0, -1, 0))
				}, "spec.delivery_start"},
			},
			trades: 0,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := engine(t)
			var trades []book.Trade
			for i, st := range c.steps {
				at := now.Add(st.at)
				before := e.OpenCount()
				o, tr, _, err := e.Place(at, st.asn, st.spec(), "", 0)
				if st.field != "" {
					var inv *invalid.Error
					if !errors.As(err, &inv) || inv.Field != st.field {
						t.Fatalf("step %d: want a refusal naming %s, got %v", i, st.field, err)
					}
					if e.OpenCount() != before {
						t.Fatalf("step %d: a refused order changed the book", i)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if o.Spec.Start.Before(at) {
					t.Fatalf("step %d: order stored with start %v before it was placed at %v", i, o.Spec.Start, at)
				}
				trades = append(trades, tr...)
			}
			if c.wake != 0 {
				ch := e.Wake(now.Add(c.wake))
				trades = append(trades, ch.Trades...)
			}
			if len(trades) != c.trades {
				t.Fatalf("%d trades, want %d: %+v", len(trades), c.trades, trades)
			}
			for _, tr := range trades {
				if !tr.Start.Equal(now.Add(c.tradeAt)) {
					t.Errorf("trade starts at %v, want %v", tr.Start, now.Add(c.tradeAt))
				}
				if tr.Start.Before(tr.Created) {
					t.Errorf("trade starts at %v, before it was made at %v", tr.Start, tr.Created)
				}
				if tr.PriceMicros != c.tradePrice {
					t.Errorf("trade price %d, want %d", tr.PriceMicros, c.tradePrice)
				}
				// The ports hold the capacity from the trade's start only.
				if p := e.PortPeak(10, tr.Start.Add(-time.Second), tr.Start); p != 0 {
					t.Errorf("buyer's port loaded %d before the trade starts", p)
				}
				if p := e.PortPeak(10, tr.Start, tr.End); p != tr.CapacityBps {
					t.Errorf("buyer's port peak %d over the trade, want %d", p, tr.CapacityBps)
				}
			}
			if len(trades) > 0 && e.OpenCount() != 0 {
				t.Errorf("%d orders still open after the match", e.OpenCount())
			}
		})
	}
}

func TestStartWithinSkewIsNow(t *testing.T) {
	e := engine(t)
	s := startingAt(spec(book.Buy, "198.51.100.0/24", Gbps, 7), now.Add(-book.StartSkew/2))
	o, _, _, err := e.Place(now, 64510, s, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Spec.Start.Equal(now) {
		t.Fatalf("start %v, want it taken as now %v", o.Spec.Start, now)
	}
}

// Capacity freed when a trade ends lets a resting pair trade at once: the
// next Wake after the end matches them.
func TestWakeWhenPortCapacityFrees(t *testing.T) {
	e := engine(t)
	day := 24 * time.Hour
	full := func(side book.Side, from, to time.Duration, price int64) book.Spec {
		s := spec(side, "198.51.100.0/24", 10*Gbps, price)
		s.Start, s.End, s.MinBlockBps = now.Add(from), now.Add(to), 10*Gbps
		return s
	}
	// 64501's port is full for the first day.
	place(t, e, 64501, full(book.Sell, 0, day, 5))
	if _, tr := place(t, e, 64510, full(book.Buy, 0, day, 5)); len(tr) != 1 {
		t.Fatal("first day did not trade")
	}
	// A sell for days 0-10 and a buy for days 0-10 cannot trade while the
	// seller's port is full: they rest.
	place(t, e, 64501, full(book.Sell, 0, 10*day, 5))
	if _, tr := place(t, e, 64511, full(book.Buy, 0, 10*day, 6)); len(tr) != 0 {
		t.Fatalf("traded over a full port: %+v", tr)
	}
	if ch := e.Wake(now.Add(day - time.Second)); len(ch.Trades) != 0 {
		t.Fatalf("woke early: %+v", ch.Trades)
	}
	ch := e.Wake(now.Add(day))
	if len(ch.Trades) != 1 || !ch.Trades[0].Start.Equal(now.Add(day)) || ch.Trades[0].PriceMicros != 5 {
		t.Fatalf("after the first trade ended: %+v; want one trade from then at the first-rested sell's price", ch.Trades)
	}
	if e.OpenCount() != 0 {
		t.Fatalf("%d orders still open", e.OpenCount())
	}
}
