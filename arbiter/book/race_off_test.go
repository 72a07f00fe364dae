//go:build !race

package book

// raceEnabled: see race_on_test.go.
const raceEnabled = false
