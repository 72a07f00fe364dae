//go:build linux

package capture

import "github.com/prometheus/client_golang/prometheus"

var (
	descFrames = prometheus.NewDesc("bwx_agent_capture_frames_total",
		"Sampled frames by class (matched, unmatched, not_ip, malformed).", []string{"class"}, nil)
	descBytes = prometheus.NewDesc("bwx_agent_capture_sampled_bytes_total",
		"Wire bytes of the sampled IP frames (not scaled by the sample rate).", nil, nil)
	descLate = prometheus.NewDesc("bwx_agent_capture_late_frames_total",
		"Frames that reached the reader after their interval was emitted (counted in a later one).", nil, nil)
	descKPackets = prometheus.NewDesc("bwx_agent_capture_kernel_packets_total",
		"Frames the kernel filter passed to the ring, drops included.", []string{"interface", "direction"}, nil)
	descKDrops = prometheus.NewDesc("bwx_agent_capture_kernel_drops_total",
		"Frames the kernel dropped for want of ring space: figures are too low while this grows.", []string{"interface", "direction"}, nil)
	descKFreezes = prometheus.NewDesc("bwx_agent_capture_kernel_queue_freezes_total",
		"Times the capture ring was full.", []string{"interface", "direction"}, nil)
)

// Collector returns the capture's Prometheus metrics (register it with the
// daemon's registry).
func (c *Capture) Collector() prometheus.Collector { return collector{c} }

type collector struct{ c *Capture }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFrames, descBytes, descLate, descKPackets, descKDrops, descKFreezes} {
		ch <- d
	}
}

func (x collector) Collect(ch chan<- prometheus.Metric) {
	st := x.c.meter.Stats()
	for cl, n := range st.Frames {
		ch <- prometheus.MustNewConstMetric(descFrames, prometheus.CounterValue, float64(n), Class(cl).String())
	}
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(descLate, prometheus.CounterValue, float64(st.Late))
	for _, k := range x.c.KernelStats() {
		ch <- prometheus.MustNewConstMetric(descKPackets, prometheus.CounterValue, float64(k.Packets), k.Interface, k.Direction.String())
		ch <- prometheus.MustNewConstMetric(descKDrops, prometheus.CounterValue, float64(k.Drops), k.Interface, k.Direction.String())
		ch <- prometheus.MustNewConstMetric(descKFreezes, prometheus.CounterValue, float64(k.QueueFreezes), k.Interface, k.Direction.String())
	}
}
