package daemon

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/bwxchange/bwx/arbiter/api"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/config"
)

// validateSettle checks the settle: section, naming its keys as the file
// spells them.
func (c *Config) validateSettle() error {
	err := c.Settle.Validate()
	var ie *registry.InvalidError
	if errors.As(err, &ie) {
		return config.Errorf("settle."+ie.Field, "%s", ie.Msg)
	}
	return err
}

// newUsageServer builds settlement over db, with SLA breaches from the
// quality matrix, and the one UsageServer both listeners share (so runs
// are serialized across them). It watches the running month's use until
// stop closes.
func newUsageServer(cfg Config, db *store.DB, reg *registry.Registry, log *slog.Logger, stop <-chan struct{}) (*api.UsageServer, *settle.Settlement, error) {
	st, err := settle.NewSettlement(db, settle.Options{Config: cfg.Settle, Breaches: settle.NewQualityBreaches(db)})
	if err != nil {
		return nil, nil, err
	}
	log = log.With("component", "settle")
	go newUseWatcher(log, st).run(stop)
	return &api.UsageServer{Usage: settle.New(db), Settle: st, Registry: reg, Log: log,
		Settled: func(ctx context.Context, res *settle.Result) { notifySettled(ctx, log, st, res) }}, st, nil
}

// notifySettled tells of a run's sustained overuse and underuse (claim 16)
// and of members near or at their credit limit. The book's event stream
// carries only trade and order events, so these are logged, one line per
// member concerned, and members read them with ListUseEvents and GetCredit.
func notifySettled(ctx context.Context, log *slog.Logger, st *settle.Settlement, res *settle.Result) {
	for _, e := range api.UseWithMembers(res) {
		for _, m := range []uint32{e.BuyerASN, e.SellerASN} {
			log.Warn("trade use outside its capacity", "member", m, "trade", e.TradeID, "kind", e.Kind.String(),
				"start", e.Start, "end", e.End, "capacity_bps", e.CapacityBps, "peak_bps", e.PeakBps, "min_bps", e.MinBps)
		}
	}
	for _, inv := range res.Invoices {
		c, err := st.Credit(ctx, inv.ASN)
		if err != nil {
			log.Error("credit after settlement", "member", inv.ASN, "error", err)
			continue
		}
		if c.State != settle.CreditOK {
			log.Warn("member credit", "member", c.ASN, "state", c.State.String(), "exposure_micros", c.ExposureMicros, "limit_micros", c.LimitMicros)
		}
	}
}

// useWatchEvery is how often the running month's use is checked.
const useWatchEvery = 15 * time.Minute

// useWatcher logs sustained overuse and underuse in the running month as
// it happens (claim 16), each (trade, kind, start) once per process, with
// both members named; members read the same with ListUseEvents.
type useWatcher struct {
	log    *slog.Logger
	events func(ctx context.Context, from, to time.Time) ([]settle.TradeUse, error)
	now    func() time.Time
	seen   map[useKey]bool
}

type useKey struct {
	trade int64
	kind  settle.UseKind
	start int64
}

func newUseWatcher(log *slog.Logger, st *settle.Settlement) *useWatcher {
	return &useWatcher{log: log, now: time.Now, seen: map[useKey]bool{},
		events: func(ctx context.Context, from, to time.Time) ([]settle.TradeUse, error) {
			return st.UseEvents(ctx, 0, from, to)
		}}
}

// check logs the events not seen before and returns them.
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
		k := useKey{e.TradeID, e.Kind, e.Start.UnixMicro()}
		if w.seen[k] {
			continue
		}
		w.seen[k] = true
		fresh = append(fresh, e)
		for _, m := range []uint32{e.BuyerASN, e.SellerASN} {
			w.log.Warn("trade use outside its capacity", "member", m, "trade", e.TradeID, "kind", e.Kind.String(),
				"start", e.Start, "until", e.End, "capacity_bps", e.CapacityBps, "peak_bps", e.PeakBps, "min_bps", e.MinBps)
		}
	}
	return fresh, nil
}

// run checks every useWatchEvery until stop closes.
func (w *useWatcher) run(stop <-chan struct{}) {
	t := time.NewTicker(useWatchEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if _, err := w.check(context.Background()); err != nil {
			select {
			case <-stop: // the database is closing
				return
			default:
				w.log.Error("checking the running month's use", "error", err)
			}
		}
	}
}
