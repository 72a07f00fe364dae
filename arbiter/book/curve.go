package book

import "sort"

// curve is the load on one switch port over time: a step function with a
// breakpoint wherever a reservation starts or ends. Delivery periods share
// boundaries (days, months), so a port carries few breakpoints however
// many trades it holds, and a check or a reservation costs only the
// breakpoints inside its period.
type curve struct {
	at   []int64 // breakpoints, unix microseconds, ascending
	load []int64 // load[i] holds on [at[i], at[i+1]); the last is always 0

	// woken, when wokenSet, is an instant a wake of this port is queued
	// for (the end of its last reservation): trades mostly end together,
	// and the next reservation ending then needs no look in the queue.
	woken    int64
	wokenSet bool
}

// index returns the position of breakpoint t, inserting it if missing.
func (c *curve) index(t int64) int {
	i := sort.Search(len(c.at), func(i int) bool { return c.at[i] >= t })
	if i < len(c.at) && c.at[i] == t {
		return i
	}
	prev := int64(0)
	if i > 0 {
		prev = c.load[i-1]
	}
	c.at = append(c.at, 0)
	c.load = append(c.load, 0)
	copy(c.at[i+1:], c.at[i:])
	copy(c.load[i+1:], c.load[i:])
	c.at[i], c.load[i] = t, prev
	return i
}

// add adds bps over [start, end) (bps < 0 undoes an add).
func (c *curve) add(start, end, bps int64) {
	i := c.index(start)
	j := c.index(end)
	for k := i; k < j; k++ {
		c.load[k] += bps
	}
}

// peak is the largest load at any instant of [start, end).
func (c *curve) peak(start, end int64) int64 {
	i := sort.Search(len(c.at), func(i int) bool { return c.at[i] > start })
	var p int64
	if i > 0 {
		p = c.load[i-1]
	}
	for ; i < len(c.at) && c.at[i] < end; i++ {
		p = max(p, c.load[i])
	}
	return p
}

// prune drops breakpoints before now that no longer matter.
func (c *curve) prune(now int64) {
	i := sort.Search(len(c.at), func(i int) bool { return c.at[i] > now })
	if i > 1 {
		c.at = append(c.at[:0], c.at[i-1:]...)
		c.load = append(c.load[:0], c.load[i-1:]...)
	}
}
