// Package clock is the product's one reading of the wall clock.
//
// Components take a `func() time.Time` (a field named Now or now) and
// default it to clock.Now; tests that fix a date pass their own. Nothing
// else in the product calls time.Now, time.Since or time.Until: a test
// (TestOnlyClockReadsTheWallClock) fails when it does, so a fixed date in
// a test is fixed for everything the test touches.
//
// In a test binary only, the environment variable BWX_TEST_NOW (RFC 3339,
// e.g. 2031-02-28T00:00:00Z) moves this clock: Now starts at that instant
// and runs on at the real rate. scripts/test.sh runs the suite's unit
// packages once more with it set years ahead, so a test that still leans
// on the real calendar, or a component that still reads the real clock
// behind its injected one, fails today rather than on that date.
package clock

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// Env is the variable that moves the clock in test binaries.
const Env = "BWX_TEST_NOW"

// offset is what Now adds to the real clock: zero outside tests.
var offset = shift(os.Getenv(Env), testing.Testing(), time.Now())

func shift(env string, inTest bool, real time.Time) time.Duration {
	if env == "" || !inTest {
		return 0
	}
	at, err := time.Parse(time.RFC3339, env)
	if err != nil {
		panic(fmt.Sprintf("%s=%q: %v (want RFC 3339, such as 2031-02-28T00:00:00Z)", Env, env, err))
	}
	return at.Sub(real)
}

// Now is time.Now, moved by BWX_TEST_NOW in tests. It keeps the monotonic
// reading (UTC() would drop it), so differences between two readings are
// immune to clock steps; callers that store or print a time convert it.
func Now() time.Time { return time.Now().Add(offset) }

// Since is the time elapsed since t by Now.
func Since(t time.Time) time.Duration { return Now().Sub(t) }

// Until is the time left until t by Now.
func Until(t time.Time) time.Duration { return t.Sub(Now()) }

// FromKernel moves a time the kernel stamped (a packet's receive time)
// onto this clock, so that it compares with Now.
func FromKernel(t time.Time) time.Time { return t.Add(offset) }
