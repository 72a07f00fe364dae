package api

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/shared/clock"
)

// The order book's series, measured here around the book's calls so
// arbiter/book stays free of metrics.

// matchBuckets run from 100µs to about 1.6s: a match is in memory, but the
// caller also waits for the group commit (an fsync) before it hears.
var matchBuckets = prometheus.ExponentialBuckets(0.0001, 2, 15)

type bookMetrics struct {
	match  *prometheus.HistogramVec
	orders *prometheus.CounterVec
}

func newBookMetrics(reg prometheus.Registerer) bookMetrics {
	m := bookMetrics{
		match: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bwx_arbiter_match_duration_seconds",
			Help:    "Time an order book operation takes, matching and the commit of its trades included, by operation (place, take, modify, cancel).",
			Buckets: matchBuckets,
		}, []string{"op"}),
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bwx_arbiter_orders_total",
			Help: "Orders members placed (place and take), by side and result (accepted or refused).",
		}, []string{"side", "result"}),
	}
	reg.MustRegister(m.match, m.orders)
	return m
}

// observeBook records one book call; m may be nil (tests without metrics).
func (m *Metrics) observeBook(op string, side book.Side, start time.Time, err error) {
	if m == nil || m.book.match == nil {
		return
	}
	m.book.match.WithLabelValues(op).Observe(clock.Since(start).Seconds())
	if op == "place" || op == "take" {
		result := "accepted"
		if err != nil {
			result = "refused"
		}
		m.book.orders.WithLabelValues(side.String(), result).Inc()
	}
}
