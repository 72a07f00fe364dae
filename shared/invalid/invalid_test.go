package invalid

import (
	"fmt"
	"testing"
)

func TestNewNamesTheFieldAndIsFoundWrapped(t *testing.T) {
	err := fmt.Errorf("placing: %w", New("spec.capacity_bps", "%d is below the minimum block %d", 5, 10))
	e, ok := As(err)
	if !ok {
		t.Fatalf("As(%v) did not find the Error", err)
	}
	if e.Field != "spec.capacity_bps" || e.Msg != "5 is below the minimum block 10" {
		t.Fatalf("got field %q msg %q", e.Field, e.Msg)
	}
	if got, want := err.Error(), "placing: spec.capacity_bps: 5 is below the minimum block 10"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if _, ok := As(fmt.Errorf("other")); ok {
		t.Fatal("As found an Error in an unrelated error")
	}
}
