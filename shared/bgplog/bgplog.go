// Package bgplog adapts slog to GoBGP's logger, for the two embedded GoBGP
// servers (the arbiter's route server and the agent's speaker).
package bgplog

import (
	"context"
	"log/slog"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// New returns a GoBGP logger writing to l. GoBGP's level follows l's: debug
// when l takes debug messages, info otherwise.
func New(l *slog.Logger) gobgplog.Logger { return &logger{l} }

type logger struct{ l *slog.Logger }

func (g *logger) log(level slog.Level, msg string, fields gobgplog.Fields) {
	if !g.l.Enabled(context.Background(), level) {
		return
	}
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	g.l.Log(context.Background(), level, msg, args...)
}

func (g *logger) Panic(msg string, f gobgplog.Fields) {
	g.log(slog.LevelError, msg, f)
	panic(msg)
}

// Fatal only logs: GoBGP calls it for errors an embedding daemon survives.
func (g *logger) Fatal(msg string, f gobgplog.Fields) { g.log(slog.LevelError, msg, f) }
func (g *logger) Error(msg string, f gobgplog.Fields) { g.log(slog.LevelError, msg, f) }
func (g *logger) Warn(msg string, f gobgplog.Fields)  { g.log(slog.LevelWarn, msg, f) }
func (g *logger) Info(msg string, f gobgplog.Fields)  { g.log(slog.LevelInfo, msg, f) }
func (g *logger) Debug(msg string, f gobgplog.Fields) { g.log(slog.LevelDebug, msg, f) }
func (g *logger) SetLevel(gobgplog.LogLevel)          {}
func (g *logger) GetLevel() gobgplog.LogLevel {
	if g.l.Enabled(context.Background(), slog.LevelDebug) {
		return gobgplog.DebugLevel
	}
	return gobgplog.InfoLevel
}
