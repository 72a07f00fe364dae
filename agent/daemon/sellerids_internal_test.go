package daemon

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSellerIDsStable: a seller keeps its probe table number across
// restarts; numbers are the smallest free ones, never shared, and ASNs
// that collide mod 4096 (64512, 68608) get different ones.
func TestSellerIDsStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "probe-sellers.json")
	s, err := loadSellerIDs(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.get(64512)
	b, _ := s.get(68608)
	if a != 1 || b != 2 {
		t.Fatalf("ids %d, %d, want 1, 2", a, b)
	}
	again, err := loadSellerIDs(path)
	if err != nil {
		t.Fatal(err)
	}
	if x, _ := again.get(68608); x != 2 {
		t.Fatalf("after a restart AS68608 has %d, want 2", x)
	}
	if x, _ := again.get(64501); x != 3 {
		t.Fatalf("a new seller got %d, want 3", x)
	}
	if err := os.WriteFile(path, []byte(`{"64512": 0}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadSellerIDs(path); err == nil {
		t.Fatal("a corrupt file was accepted")
	}
}
