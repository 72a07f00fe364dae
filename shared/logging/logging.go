// Package logging builds the slog.Logger the bwx daemons log with.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Levels and Formats are the accepted values of New's level and format, as
// they appear in configuration files and flags.
var (
	Levels  = []string{"debug", "info", "warn", "error"}
	Formats = []string{"auto", "json", "text"}
)

// New returns a logger writing to w at the given level (debug, info, warn or
// error) in the given format: "json", "text", or "auto", which is text when w
// is a terminal and JSON otherwise (under systemd the journal gets JSON, an
// operator running the daemon by hand gets readable lines). An empty level
// means info and an empty format means auto.
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	return NewWithLevel(w, lvl, format)
}

// NewReloadable is New with the level in a *slog.LevelVar that a daemon
// sets again when it reloads its config (SIGHUP).
func NewReloadable(w io.Writer, level, format string) (*slog.Logger, *slog.LevelVar, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, nil, err
	}
	v := new(slog.LevelVar)
	v.Set(lvl)
	log, err := NewWithLevel(w, v, format)
	return log, v, err
}

// NewWithLevel is New with a slog.Leveler, such as a *slog.LevelVar that a
// daemon changes when it reloads its config.
func NewWithLevel(w io.Writer, level slog.Leveler, format string) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(format) {
	case "", "auto":
		if IsTerminal(w) {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("invalid log format %q: want one of %s", format, strings.Join(Formats, ", "))
}

// ParseLevel parses debug, info, warn or error (any case); "" is info.
func ParseLevel(level string) (slog.Level, error) {
	switch strings.ToLower(level) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("invalid log level %q: want one of %s", level, strings.Join(Levels, ", "))
}

// IsTerminal reports whether w is a character device (a terminal), without
// depending on x/term.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
