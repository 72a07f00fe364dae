package book

import (
	"context"
	"errors"
	"slices"
	"time"
)

// RefusedError is a buy the CreditCheck check refused (the member is at its
// credit limit) or could not clear; Err is the check's own explanation.
type RefusedError struct {
	ASN uint32
	Err error
}

func (e *RefusedError) Error() string { return e.Err.Error() }

func (e *RefusedError) Unwrap() error { return e.Err }

// BuyCheck judges a buy of a member against its standing, without
// reading the store: openBuys are its open buy orders at their worst case
// (Order.Commitment), buy the buy to add (a new order, or an open one
// modified to spend more, then not among openBuys), nil when one of
// openBuys is about to trade.
type BuyCheck func(openBuys []Commitment, buy *Commitment) error

// engineCheck is the engine's check on a buy: CreditCheck with the buyer's
// uncommitted trades, then its check with the buyer's open buys; nil when
// no check is configured. pre, if it holds a standing of the same member
// read before the lock was taken, and no buy trade of that member has been
// made since, is used as it is: the store and inflight together then
// still say what they said. Otherwise CreditCheck is asked here, under the
// lock. The open buys come from the engine, under the lock: always as
// they stand.
func (b *Book) engineCheck(ctx context.Context, pre *precheck) func(asn uint32, buy *Order, now time.Time) error {
	if b.opt.CreditCheck == nil {
		return nil
	}
	return func(asn uint32, buy *Order, now time.Time) error {
		var check BuyCheck
		var err error
		reuse := false
		if pre != nil && pre.asn == asn {
			b.imu.Lock()
			reuse = b.bought[asn] == pre.bought
			b.imu.Unlock()
		}
		if reuse {
			check, err = pre.check, pre.err
		} else {
			_, check, err = b.askCredit(ctx, asn)
		}
		if err != nil || check == nil {
			return err
		}
		var add *Commitment
		var except int64
		if buy != nil {
			c := buy.Commitment(now)
			add, except = &c, buy.ID
		}
		if err := check(b.eng.OpenBuys(asn, now, except), add); err != nil {
			return &RefusedError{ASN: asn, Err: err}
		}
		return nil
	}
}

// precheck is a member's standing read before the book's lock.
type precheck struct {
	asn    uint32
	bought uint64
	check  BuyCheck
	err    error
}

// precheckBuy asks CreditCheck for asn outside the lock, so that the store
// reads of concurrent buyers overlap instead of queueing behind the lock.
func (b *Book) precheckBuy(ctx context.Context, asn uint32) *precheck {
	if b.opt.CreditCheck == nil {
		return nil
	}
	n, check, err := b.askCredit(ctx, asn)
	return &precheck{asn: asn, bought: n, check: check, err: err}
}

// askCredit snapshots asn's trades in flight (before reading the store,
// so a trade landing in between is counted twice, never missed) and asks
// CreditCheck; it returns the buy count the answer is good for.
func (b *Book) askCredit(ctx context.Context, asn uint32) (uint64, BuyCheck, error) {
	b.imu.Lock()
	pending := slices.Clone(b.inflight[asn])
	n := b.bought[asn]
	b.imu.Unlock()
	check, err := b.opt.CreditCheck(ctx, asn, pending)
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return n, check, err // a caller that gave up was not refused
	}
	return n, nil, &RefusedError{ASN: asn, Err: err}
}
