package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/agent/manager"
	"github.com/bwxchange/bwx/shared/clock"
)

func TestJournalPersistsAndRestores(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.StateDir = dir
	cfg.Manager.JournalSize = 5
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := NewTradingLoop(cfg, 64510, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	// Decisions as a Step makes them, persisted as the loop does.
	p := netip.MustParsePrefix("2001:db8:300::/48")
	var ds []manager.Decision
	for i := 1; i <= 8; i++ {
		ds = append(ds, manager.Decision{Seq: uint64(i), At: time.Date(2026, 1, 1, 0, i, 0, 0, time.UTC), Kind: manager.KindHold, Prefix: p, Reason: "test"})
	}
	l.m.Restore(ds[:3])
	l.saved = 0
	l.persist()
	l.m.Restore(ds[3:])
	l.persist()
	got, err := manager.ReadJournalFile(cfg.journalPath(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[0].Seq != 4 || got[4].Seq != 8 || got[4].Prefix != p {
		t.Fatalf("read back %+v, want decisions 4-8", got)
	}
	// A restarted agent continues the journal where it was.
	l2, err := NewTradingLoop(cfg, 64510, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if last := l2.m.Journal().Last(); last != 8 {
		t.Errorf("restored journal ends at %d, want 8", last)
	}
	// A torn last line (a crash mid-write) is skipped; a corrupt line in
	// the middle is an error naming the file and line.
	f, _ := os.OpenFile(cfg.journalPath(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":9,"kind":"ho`)
	f.Close()
	if got, err := manager.ReadJournalFile(cfg.journalPath(), 5); err != nil || len(got) != 5 || got[4].Seq != 8 {
		t.Errorf("torn last line: %d decisions, %v", len(got), err)
	}
	f, _ = os.OpenFile(cfg.journalPath(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\n{\"seq\":10}\n")
	f.Close()
	if _, err := manager.ReadJournalFile(cfg.journalPath(), 5); err == nil || !strings.Contains(err.Error(), "decisions.jsonl:9") {
		t.Errorf("corrupt middle line: %v, want an error naming line 9", err)
	}
}

func TestStatusSocketServesDecisions(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StateDir = t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := NewTradingLoop(cfg, 64510, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix("198.18.0.0/24")
	l.m.Restore([]manager.Decision{
		{Seq: 1, At: clock.Now().UTC(), Kind: manager.KindBuy, Shadow: true, Prefix: p, Seller: 64502, Reason: "a"},
		{Seq: 2, At: clock.Now().UTC(), Kind: manager.KindHold, Shadow: true, Prefix: p, Reason: "b"},
	})
	a := &Agent{cfg: cfg, log: log, trading: l}
	sock := filepath.Join(cfg.StateDir, "agent.sock")
	ln, err := listenStatus(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.serveStatus(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()
	ds, err := FetchDecisions(ctx, sock, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Mode != "shadow" || len(ds.Decisions) != 1 || ds.Decisions[0].Seq != 2 || ds.Decisions[0].Kind != manager.KindHold {
		t.Errorf("decisions after 1: %+v", ds)
	}
	// An agent without a manager says so.
	off := &Agent{cfg: cfg, log: log}
	sock2 := filepath.Join(cfg.StateDir, "off.sock")
	ln2, err := listenStatus(sock2)
	if err != nil {
		t.Fatal(err)
	}
	done2 := make(chan struct{})
	go func() { off.serveStatus(ctx, ln2); close(done2) }()
	defer func() { cancel(); <-done2 }()
	if _, err := FetchDecisions(ctx, sock2, 0); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("without a manager: %v, want it to say the manager is not running", err)
	}
}
