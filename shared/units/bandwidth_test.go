package units

import "testing"

func TestApprox(t *testing.T) {
	for b, want := range map[Bandwidth]string{0: "0bps", 7: "7bps", 999: "999bps", 1000: "1.00kbps", 812_345: "812kbps",
		1_234_567_890: "1.23Gbps", 10e9: "10.0Gbps", 99_950_000: "100Mbps", 400e12: "400Tbps"} {
		if got := b.Approx(); got != want {
			t.Errorf("%d: %q, want %q", int64(b), got, want)
		}
	}
}
