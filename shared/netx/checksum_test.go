package netx

import "testing"

func TestChecksum(t *testing.T) {
	// Echo request, id 0x1234, seq 1, no payload.
	msg := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1}
	if got, want := Checksum(msg), uint16(0xe5ca); got != want {
		t.Errorf("checksum = %#04x, want %#04x", got, want)
	}
}
