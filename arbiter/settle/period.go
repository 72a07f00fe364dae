package settle

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Period is a billing period [Start, End) in UTC; by default a calendar month.
type Period struct{ Start, End time.Time }

// Month is the calendar month m of year in UTC.
func Month(year int, m time.Month) Period {
	s := time.Date(year, m, 1, 0, 0, 0, 0, time.UTC)
	return Period{Start: s, End: s.AddDate(0, 1, 0)}
}

// MonthOf is the calendar month that holds t.
func MonthOf(t time.Time) Period {
	t = t.UTC()
	return Month(t.Year(), t.Month())
}

// ParsePeriod parses a calendar month written YYYY-MM, e.g. "2026-11", or
// any span as START/END in RFC 3339, e.g.
// "2026-11-01T10:00:00Z/2026-11-01T10:30:00Z" (a lab's few minutes).
func ParsePeriod(s string) (Period, error) {
	if a, b, ok := strings.Cut(s, "/"); ok {
		st, err1 := time.Parse(time.RFC3339, a)
		en, err2 := time.Parse(time.RFC3339, b)
		if err := errors.Join(err1, err2); err != nil {
			return Period{}, fmt.Errorf("period %q: want START/END in RFC 3339, e.g. 2026-11-01T10:00:00Z/2026-11-01T10:30:00Z", s)
		}
		p := Period{Start: st.UTC(), End: en.UTC()}
		return p, p.Validate()
	}
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return Period{}, fmt.Errorf("period %q: want a calendar month as YYYY-MM, e.g. 2026-11, or START/END in RFC 3339", s)
	}
	return Month(t.Year(), t.Month()), nil
}

// Validate says what is wrong with p.
func (p Period) Validate() error {
	switch {
	case p.Start.IsZero() || p.End.IsZero():
		return fmt.Errorf("period: start and end are required")
	case !p.End.After(p.Start):
		return fmt.Errorf("period: end %s is not after start %s", p.End.UTC().Format(time.RFC3339), p.Start.UTC().Format(time.RFC3339))
	}
	return nil
}

// inMonth says whether p lies within one calendar month: prices are per
// month, and a span is charged its share of the month it is in.
func (p Period) inMonth() error {
	if m := MonthOf(p.Start); p.End.After(m.End) {
		return fmt.Errorf("period %s: a span must lie within one calendar month (prices are per month); settle each month's part", p)
	}
	return nil
}

// fits says whether p starts and ends on slot boundaries, so that every
// slot of usage is wholly in or out of it.
func (p Period) fits(slot time.Duration) error {
	us := int64(slot / time.Microsecond)
	if p.Start.UnixMicro()%us != 0 || p.End.UnixMicro()%us != 0 {
		return fmt.Errorf("period: start and end must fall on %s boundaries (settle.slot)", slot)
	}
	return nil
}

// Micros is the length of p in microseconds, the pro-rata unit.
func (p Period) Micros() int64 { return p.End.UnixMicro() - p.Start.UnixMicro() }

// String is YYYY-MM for a calendar month, start/end in RFC 3339 otherwise.
func (p Period) String() string {
	if p == MonthOf(p.Start) {
		return p.Start.UTC().Format("2006-01")
	}
	return p.Start.UTC().Format(time.RFC3339) + "/" + p.End.UTC().Format(time.RFC3339)
}

// Interval is a span of time [Start, End), e.g. an SLA breach.
type Interval struct{ Start, End time.Time }

// clip returns the overlap of [a, b) and [from, to) in unix microseconds.
func clip(a, b, from, to int64) (int64, int64, bool) {
	a, b = max(a, from), min(b, to)
	return a, b, b > a
}
