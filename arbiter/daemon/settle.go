package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/bwxchange/bwx/arbiter/api"
	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/delivery"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/config"
	"github.com/bwxchange/bwx/shared/invalid"
)

// validateSettle checks the settle: section, naming its keys as the file
// spells them.
func (c *Config) validateSettle() error {
	err := c.Settle.Validate()
	var ie *invalid.Error
	if errors.As(err, &ie) {
		return config.Errorf("settle."+ie.Field, "%s", ie.Msg)
	}
	return err
}

// deliveryGaps gives settlement the delivery record's gaps the seller
// caused: billing follows delivery.
type deliveryGaps struct{ r *delivery.Record }

func (g deliveryGaps) Gaps(ctx context.Context, tradeID int64, from, to time.Time) ([]settle.Interval, error) {
	spans, err := g.r.SellerGaps(ctx, tradeID, from, to)
	out := make([]settle.Interval, len(spans))
	for i, s := range spans {
		out[i] = settle.Interval{Start: s.Start, End: s.End}
	}
	return out, err
}

// newUsageServer builds settlement over db, with SLA breaches from the
// quality matrix and undelivered time from the delivery record, and the one UsageServer both listeners share (so runs
// are serialized across them). Its notifications reach the members' event
// streams once the book is attached (notices.attach); it watches the
// running month's use until stop closes.
func newUsageServer(cfg Config, db *store.DB, reg *registry.Registry, log *slog.Logger, stop <-chan struct{}) (*api.UsageServer, *settle.Settlement, *settleNotices, error) {
	st, err := settle.NewSettlement(db, settle.Options{Config: cfg.Settle, Breaches: settle.NewQualityBreaches(db),
		Gaps: deliveryGaps{delivery.NewRecord(db)}})
	if err != nil {
		return nil, nil, nil, err
	}
	log = log.With("component", "settle")
	n := newSettleNotices(log, st)
	w := newUseWatcher(log, st)
	w.notify, w.after = n.uses, n.checkCredits
	// The watcher's checks stop with the arbiter; Close waits for it before
	// it closes the book and the database.
	ctx, cancel := context.WithCancel(context.Background())
	watching := make(chan struct{})
	n.watching = watching
	go func() {
		<-stop
		cancel()
	}()
	go func() {
		defer close(watching)
		w.run(ctx)
	}()
	return &api.UsageServer{Usage: settle.New(db), Settle: st, Registry: reg, Log: log,
		Settled: n.settled,
		CreditChanged: func(ctx context.Context, c settle.Credit) {
			if err := n.credit(ctx, c); err != nil {
				log.Error("credit notification", "member", c.ASN, "error", err)
			}
		}}, st, n, nil
}

// settleNotices puts settlement's notifications on the members' event
// streams (claim 16 and credit control): sustained overuse and underuse to
// both members of the trade, and a credit warning or stop to the member
// whose credit state changed. Until the book is attached they are only
// logged.
type settleNotices struct {
	log *slog.Logger
	st  *settle.Settlement

	mu    sync.Mutex
	book  *book.Book
	state map[uint32]settle.CreditState // as last told, by member

	// watching is closed when the use watcher has stopped.
	watching <-chan struct{}
}

func newSettleNotices(log *slog.Logger, st *settle.Settlement) *settleNotices {
	return &settleNotices{log: log, st: st, state: map[uint32]settle.CreditState{}}
}

func (n *settleNotices) attach(b *book.Book) {
	n.mu.Lock()
	n.book = b
	n.mu.Unlock()
}

func (n *settleNotices) bk() *book.Book {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.book
}

// uses appends use events, one per member of each trade; the book drops
// the ones it already has, so a repeat is harmless.
func (n *settleNotices) uses(ctx context.Context, us []settle.TradeUse) error {
	b := n.bk()
	if b == nil {
		return nil
	}
	var evs []book.Event
	for _, u := range us {
		typ := book.UseOver
		if u.Kind == settle.Underuse {
			typ = book.UseUnder
		}
		note := &book.UseNotice{Start: u.Start, End: u.End, CapacityBps: u.CapacityBps, PeakBps: u.PeakBps, MinBps: u.MinBps}
		for _, m := range []uint32{u.BuyerASN, u.SellerASN} {
			evs = append(evs, book.Event{MemberASN: m, Type: typ, Trade: &book.Trade{ID: u.TradeID}, Use: note})
		}
	}
	_, err := b.AppendEvents(ctx, evs)
	return err
}

// credit tells member c.ASN of a change of its credit state: a warning or
// a stop (a return to ok is not an event; the next warning is). The state
// last told survives restarts in the event log.
func (n *settleNotices) credit(ctx context.Context, c settle.Credit) error {
	b := n.bk()
	if b == nil {
		return nil
	}
	n.mu.Lock()
	prev, known := n.state[c.ASN]
	n.mu.Unlock()
	if !known {
		last, err := b.LastEventType(ctx, c.ASN, book.CreditWarning, book.CreditStopped)
		if err != nil {
			return err
		}
		switch last {
		case book.CreditWarning:
			prev = settle.CreditWarning
		case book.CreditStopped:
			prev = settle.CreditStopped
		}
	}
	if c.State != prev && c.State != settle.CreditOK {
		typ := book.CreditWarning
		if c.State == settle.CreditStopped {
			typ = book.CreditStopped
		}
		_, err := b.AppendEvents(ctx, []book.Event{{MemberASN: c.ASN, Type: typ, Credit: &book.CreditNotice{LimitMicros: c.LimitMicros,
			UnpaidMicros: c.UnpaidMicros, AccruedMicros: c.AccruedMicros, OrdersMicros: c.OrdersMicros, ExposureMicros: c.ExposureMicros}}})
		if err != nil {
			return err
		}
		n.log.Warn("member credit", "member", c.ASN, "state", c.State.String(), "exposure_micros", c.ExposureMicros, "limit_micros", c.LimitMicros)
	}
	n.mu.Lock()
	n.state[c.ASN] = c.State
	n.mu.Unlock()
	return nil
}

// checkCredits reviews every member's credit (trades made since the last
// look raise exposure too).
func (n *settleNotices) checkCredits(ctx context.Context) error {
	b := n.bk()
	if b == nil {
		return nil
	}
	var asns []uint32
	b.Inspect(func(e *book.Engine) {
		for asn := range e.Members() {
			asns = append(asns, asn)
		}
	})
	slices.Sort(asns)
	for _, asn := range asns {
		c, err := n.st.Credit(ctx, asn)
		if err != nil {
			return fmt.Errorf("credit of AS%d: %w", asn, err)
		}
		if err := n.credit(ctx, c); err != nil {
			return fmt.Errorf("credit of AS%d: %w", asn, err)
		}
	}
	return nil
}

// settled tells of a run's sustained overuse and underuse (claim 16) and
// of the credit of the members it invoiced.
func (n *settleNotices) settled(ctx context.Context, res *settle.Result) {
	us := api.UseWithMembers(res)
	for _, e := range us {
		for _, m := range []uint32{e.BuyerASN, e.SellerASN} {
			n.log.Warn("trade use outside its capacity", "member", m, "trade", e.TradeID, "kind", e.Kind.String(),
				"start", e.Start, "end", e.End, "capacity_bps", e.CapacityBps, "peak_bps", e.PeakBps, "min_bps", e.MinBps)
		}
	}
	if err := n.uses(ctx, us); err != nil {
		n.log.Error("use notifications after settlement", "error", err)
	}
	for _, inv := range res.Invoices {
		c, err := n.st.Credit(ctx, inv.ASN)
		if err == nil {
			err = n.credit(ctx, c)
		}
		if err != nil {
			n.log.Error("credit after settlement", "member", inv.ASN, "error", err)
		}
	}
}

// useWatchEvery is how often the running month's use is checked.
const useWatchEvery = 15 * time.Minute

// useWatcher finds sustained overuse and underuse in the running month as
// it happens (claim 16) and hands each (trade, kind, start) to notify once
// per process (the book de-duplicates across restarts), logging it with
// both members named; members also read the same with ListUseEvents.
// after runs after each check (the credit review).
type useWatcher struct {
	log    *slog.Logger
	events func(ctx context.Context, from, to time.Time) ([]settle.TradeUse, error)
	notify func(ctx context.Context, us []settle.TradeUse) error
	after  func(ctx context.Context) error
	now    func() time.Time
	seen   map[useKey]bool
}

type useKey struct {
	trade int64
	kind  settle.UseKind
	start int64
}

func newUseWatcher(log *slog.Logger, st *settle.Settlement) *useWatcher {
	return &useWatcher{log: log, now: clock.Now, seen: map[useKey]bool{},
		events: func(ctx context.Context, from, to time.Time) ([]settle.TradeUse, error) {
			return st.UseEvents(ctx, 0, from, to)
		}}
}

// check notifies and logs the events not seen before and returns them; an
// event whose notification failed is tried again at the next check.
func (w *useWatcher) check(ctx context.Context) ([]settle.TradeUse, error) {
	now := w.now().UTC()
	from := settle.MonthOf(now).Start
	if !now.After(from) {
		return nil, nil
	}
	evs, err := w.events(ctx, from, now)
	if err != nil {
		return nil, err
	}
	var fresh []settle.TradeUse
	for _, e := range evs {
		if !w.seen[useKey{e.TradeID, e.Kind, e.Start.UnixMicro()}] {
			fresh = append(fresh, e)
		}
	}
	if w.notify != nil && len(fresh) > 0 {
		if err := w.notify(ctx, fresh); err != nil {
			return nil, fmt.Errorf("notifying use events: %w", err)
		}
	}
	for _, e := range fresh {
		w.seen[useKey{e.TradeID, e.Kind, e.Start.UnixMicro()}] = true
		for _, m := range []uint32{e.BuyerASN, e.SellerASN} {
			w.log.Warn("trade use outside its capacity", "member", m, "trade", e.TradeID, "kind", e.Kind.String(),
				"start", e.Start, "until", e.End, "capacity_bps", e.CapacityBps, "peak_bps", e.PeakBps, "min_bps", e.MinBps)
		}
	}
	return fresh, nil
}

// run checks every useWatchEvery until stop closes.
func (w *useWatcher) run(ctx context.Context) {
	t := time.NewTicker(useWatchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := w.check(ctx)
		if err == nil && w.after != nil {
			err = w.after(ctx)
		}
		if err != nil {
			if ctx.Err() != nil { // the arbiter is stopping
				return
			}
			w.log.Error("checking the running month's use and credit", "error", err)
		}
	}
}
