package quality

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"sort"
	"time"
)

// Third-party measurements (claim 10) come from RIPE Atlas ping results, the
// JSON the Atlas API and its daily dumps publish: either one JSON array of
// results or one result per line. A probe's own network is the path it
// measures: a probe inside a seller's AS measures that seller toward the
// destination, so each result needs the probe's ASN (from the Atlas probe
// archive, or one --via for the whole file).

// atlasPing is the part of an Atlas ping result bwx uses. Firmware 1 names
// the destination "addr"; later firmware "dst_addr" and adds per-reply RTTs.
type atlasPing struct {
	Type      string  `json:"type"`
	AF        int     `json:"af"`
	DstAddr   string  `json:"dst_addr"`
	Addr      string  `json:"addr"`
	PrbID     int64   `json:"prb_id"`
	MsmID     int64   `json:"msm_id"`
	Timestamp int64   `json:"timestamp"`
	Sent      int     `json:"sent"`
	Rcvd      int     `json:"rcvd"`
	Avg       float64 `json:"avg"`
	Result    []struct {
		RTT *float64 `json:"rtt"`
		TTL int      `json:"ttl"`
	} `json:"result"`
}

// AtlasImport is what an Atlas file gave: the measurements and, by reason,
// the results that could not become one.
type AtlasImport struct {
	Measurements []Measurement
	Results      int
	Skipped      map[string]int
}

// AtlasSource maps an Atlas result onto bwx: the member whose network the
// probe measures and the registered prefix holding the destination.
type AtlasSource struct {
	// Via returns the seller a probe measures, by probe ID and address family.
	Via func(probe int64, af int) (uint32, bool)
	// Prefix returns the registered destination prefix holding addr.
	Prefix func(addr netip.Addr) (netip.Prefix, bool)
}

// ParseAtlas reads Atlas ping results from r. A malformed record stops the
// import with its position; results that are fine but unusable (not a ping,
// a probe with no known ASN, a destination outside every registered prefix,
// nothing sent) are counted in Skipped by reason.
func ParseAtlas(r io.Reader, src AtlasSource) (AtlasImport, error) {
	out := AtlasImport{Skipped: map[string]int{}}
	err := decodeJSONStream(r, func(i int, raw json.RawMessage) error {
		var p atlasPing
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("result %d: %w", i+1, err)
		}
		out.Results++
		m, reason, err := p.measurement(src)
		if err != nil {
			return fmt.Errorf("result %d (msm %d, probe %d): %w", i+1, p.MsmID, p.PrbID, err)
		}
		if reason != "" {
			out.Skipped[reason]++
			return nil
		}
		out.Measurements = append(out.Measurements, m)
		return nil
	})
	return out, err
}

// Bounds of a believable Atlas ping result: a ping sends a few packets
// (Atlas allows up to 16) and waits for each seconds, not minutes.
const (
	maxAtlasSent = 1 << 16
	maxAtlasRTT  = 60_000 // ms
)

func (p *atlasPing) measurement(src AtlasSource) (Measurement, string, error) {
	if p.Type != "" && p.Type != "ping" {
		return Measurement{}, "not a ping result", nil
	}
	dst := p.DstAddr
	if dst == "" {
		dst = p.Addr
	}
	target, err := netip.ParseAddr(dst)
	if err != nil {
		return Measurement{}, "", fmt.Errorf("dst_addr %q is not an IP address", dst)
	}
	target = target.Unmap()
	af := p.AF
	if af == 0 {
		af = 4
		if target.Is6() {
			af = 6
		}
	}
	if p.Timestamp <= 0 {
		return Measurement{}, "", errors.New("timestamp is missing")
	}
	if p.Sent <= 0 {
		return Measurement{}, "no packets sent", nil
	}
	if p.Rcvd < 0 || p.Rcvd > p.Sent {
		return Measurement{}, "", fmt.Errorf("rcvd %d is not within 0..sent (%d)", p.Rcvd, p.Sent)
	}
	if p.Sent > maxAtlasSent {
		return Measurement{}, "", fmt.Errorf("sent %d is more than a ping sends (at most %d)", p.Sent, maxAtlasSent)
	}
	// Atlas writes avg -1 when nothing came back; anything else outside
	// 0..maxAtlasRTT would become a negative or wrapped-around latency.
	if p.Avg != -1 && (p.Avg < 0 || p.Avg > maxAtlasRTT) {
		return Measurement{}, "", fmt.Errorf("avg %v ms is not a round-trip time (0 to %d ms)", p.Avg, maxAtlasRTT)
	}
	for i, r := range p.Result {
		if r.RTT != nil && (*r.RTT < 0 || *r.RTT > maxAtlasRTT) {
			return Measurement{}, "", fmt.Errorf("result[%d].rtt %v ms is not a round-trip time (0 to %d ms)", i, *r.RTT, maxAtlasRTT)
		}
	}
	via, ok := src.Via(p.PrbID, af)
	if !ok {
		return Measurement{}, "probe's network unknown", nil
	}
	prefix, ok := src.Prefix(target)
	if !ok {
		return Measurement{}, "destination not in a registered prefix", nil
	}
	var rtts []float64
	hops := int32(0)
	for _, r := range p.Result {
		if r.RTT != nil {
			rtts = append(rtts, *r.RTT)
			if r.TTL > 0 && hops == 0 {
				hops = hopsFromTTL(r.TTL)
			}
		}
	}
	avg := p.Avg
	if avg < 0 { // Atlas writes -1 when nothing came back
		avg = 0
	}
	if avg == 0 && len(rtts) > 0 {
		avg = mean(rtts)
	}
	return Measurement{
		IdempotencyKey: fmt.Sprintf("atlas:%d:%d:%d", p.MsmID, p.PrbID, p.Timestamp),
		ViaASN:         via,
		Prefix:         prefix,
		Target:         target,
		At:             time.Unix(p.Timestamp, 0).UTC(),
		LatencyUs:      int64(math.Round(avg * 1000)),
		JitterUs:       int64(math.Round(Jitter(rtts) * 1000)),
		LossPPM:        int32(int64(p.Sent-p.Rcvd) * 1_000_000 / int64(p.Sent)),
		IPHops:         hops,
		ProbesSent:     int32(p.Sent),
	}, "", nil
}

// Jitter is the mean absolute difference of consecutive round-trip times
// (the unsmoothed form of RFC 3550's interarrival jitter), in their unit.
func Jitter(rtts []float64) float64 {
	if len(rtts) < 2 {
		return 0
	}
	var sum float64
	for i := 1; i < len(rtts); i++ {
		sum += math.Abs(rtts[i] - rtts[i-1])
	}
	return sum / float64(len(rtts)-1)
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// hopsFromTTL estimates the routers on the way back from a reply's TTL:
// hosts start at 64, 128 or 255.
func hopsFromTTL(ttl int) int32 {
	for _, initial := range []int{64, 128, 255} {
		if ttl <= initial {
			return int32(initial - ttl)
		}
	}
	return 0
}

// AtlasProbes reads the Atlas probe archive (`{"objects": [...]}`, or an API
// page `{"results": [...]}`) into a probe ID -> ASN map per address family.
func AtlasProbes(r io.Reader) (map[int64][2]uint32, error) {
	var doc struct {
		Objects []atlasProbe `json:"objects"`
		Results []atlasProbe `json:"results"`
	}
	if err := json.NewDecoder(bufio.NewReader(r)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("probe archive: %w", err)
	}
	out := make(map[int64][2]uint32, len(doc.Objects)+len(doc.Results))
	for _, p := range append(doc.Objects, doc.Results...) {
		if p.ID > 0 {
			out[p.ID] = [2]uint32{p.ASNv4, p.ASNv6}
		}
	}
	if len(out) == 0 {
		return nil, errors.New(`probe archive: no probes (expected {"objects": [{"id": ..., "asn_v4": ..., "asn_v6": ...}]})`)
	}
	return out, nil
}

type atlasProbe struct {
	ID    int64  `json:"id"`
	ASNv4 uint32 `json:"asn_v4"`
	ASNv6 uint32 `json:"asn_v6"`
}

// ProbeVia turns a probe map into AtlasSource.Via.
func ProbeVia(probes map[int64][2]uint32) func(int64, int) (uint32, bool) {
	return func(id int64, af int) (uint32, bool) {
		asns, ok := probes[id]
		if !ok {
			return 0, false
		}
		asn := asns[0]
		if af == 6 {
			asn = asns[1]
		}
		return asn, asn != 0
	}
}

// decodeJSONStream calls f for each value of a JSON array, or of a stream of
// values one after another (the Atlas dumps' one result per line).
func decodeJSONStream(r io.Reader, f func(int, json.RawMessage) error) error {
	br := bufio.NewReader(r)
	first, err := firstNonSpace(br)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty input: expected Atlas results as a JSON array or one JSON object per line")
		}
		return err
	}
	dec := json.NewDecoder(br)
	if first == '[' {
		if _, err := dec.Token(); err != nil {
			return err
		}
	}
	for i := 0; ; i++ {
		if first == '[' && !dec.More() {
			_, err := dec.Token()
			return err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) && first != '[' {
				return nil
			}
			return fmt.Errorf("result %d: %w", i+1, err)
		}
		if err := f(i, raw); err != nil {
			return err
		}
	}
}

func firstNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b, br.UnreadByte()
	}
}

// SkippedReasons lists the skip reasons in a stable order, for messages.
func (a AtlasImport) SkippedReasons() []string {
	var out []string
	for r, n := range a.Skipped {
		out = append(out, fmt.Sprintf("%s: %d", r, n))
	}
	sort.Strings(out)
	return out
}
