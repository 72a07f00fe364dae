package manager

import (
	"testing"
	"time"
)

// The arbiter keeps delivery times to the microsecond: a taken offer's real
// trade must still end its pending buy, or the buy counts against
// buy.max_open_orders for pendingTTL and blocks failover.
func TestPendingEndsWithTheArbitersTrade(t *testing.T) {
	p := testPolicy()
	p.Buy.MaxOpenOrders = 1
	m, k := baseline(t, p)
	ds := m.Step(k.inputs(t0.Add(123456789 * time.Nanosecond)))
	if find(ds, KindBuy) == nil {
		t.Fatalf("no buy: %v", kinds(ds))
	}
	k.apply(ds)
	for i := range k.trades {
		k.trades[i].Start = k.trades[i].Start.Truncate(time.Microsecond)
		k.trades[i].End = k.trades[i].End.Truncate(time.Microsecond)
	}
	m.Step(k.inputs(t0.Add(time.Minute)))
	if n := len(m.virtual); n != 0 {
		t.Fatalf("%d buys still pending after their trade showed up", n)
	}
}

// Shadow mode's imagined trades are not orders in flight: with
// buy.max_open_orders 1 a shadow failover still buys the next offer.
func TestShadowFailoverWithOneOpenOrder(t *testing.T) {
	p := testPolicy()
	p.Mode = ModeShadow
	p.Buy.MaxOpenOrders = 1
	m, k := baseline(t, p)
	if b := find(m.Step(k.inputs(t0)), KindBuy); b == nil || b.Seller != asA {
		t.Fatalf("shadow buy %+v", b)
	}
	var ds []Decision
	for i := 1; i <= 3; i++ {
		now := t0.Add(time.Duration(i) * time.Minute)
		feed(m, now, map[uint32]int64{DefaultPath: 30, asB: 18, asC: 28})
		probe(m, asA, pfx4, now, 0, 1_000_000)
		ds = m.Step(k.inputs(now))
	}
	if buy := find(ds, KindBuy); buy == nil || !buy.Shadow || buy.Seller != asB {
		t.Fatalf("want a shadow failover buy from B, got %+v", ds)
	}
}
