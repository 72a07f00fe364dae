// Package netx holds small network helpers that both sides (agent and
// arbiter) and the lab share, so that each has one copy.
package netx

// Checksum is the Internet checksum (RFC 1071), as ICMP echo requests
// carry it.
func Checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
