package logging_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bwxchange/bwx/shared/logging"
)

func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	log, err := logging.New(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("session up", "member", "as64496")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON record: %q: %v", buf.String(), err)
	}
	if rec["level"] != "INFO" || rec["msg"] != "session up" || rec["member"] != "as64496" {
		t.Errorf("record %v", rec)
	}
}

func TestText(t *testing.T) {
	var buf bytes.Buffer
	log, err := logging.New(&buf, "DEBUG", "text")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("probe sent", "dst", "192.0.2.1")
	if got := buf.String(); !strings.Contains(got, `level=DEBUG msg="probe sent" dst=192.0.2.1`) {
		t.Errorf("got %q", got)
	}
}

func TestLevels(t *testing.T) {
	for level, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "info": slog.LevelInfo, "": slog.LevelInfo,
		"warn": slog.LevelWarn, "error": slog.LevelError,
	} {
		var buf bytes.Buffer
		log, err := logging.New(&buf, level, "json")
		if err != nil {
			t.Fatalf("%q: %v", level, err)
		}
		for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
			if got := log.Enabled(t.Context(), l); got != (l >= want) {
				t.Errorf("level %q: Enabled(%s) = %t", level, l, got)
			}
		}
	}
}

func TestBadLevel(t *testing.T) {
	_, err := logging.New(&bytes.Buffer{}, "verbose", "json")
	if err == nil || !strings.Contains(err.Error(), `"verbose"`) {
		t.Fatalf("got %v, want an error naming \"verbose\"", err)
	}
}

func TestBadFormat(t *testing.T) {
	_, err := logging.New(&bytes.Buffer{}, "info", "xml")
	if err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Fatalf("got %v, want an error naming \"xml\"", err)
	}
}

func TestAuto(t *testing.T) {
	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	// /dev/null is a character device like a terminal, so it exercises the
	// terminal branch without needing a pty.
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	for _, tt := range []struct {
		name string
		w    io.Writer
		text bool
	}{
		{"buffer", &bytes.Buffer{}, false},
		{"regular file", file, false},
		{"character device", devNull, true},
	} {
		log, err := logging.New(tt.w, "info", "auto")
		if err != nil {
			t.Fatal(err)
		}
		_, isText := log.Handler().(*slog.TextHandler)
		_, isJSON := log.Handler().(*slog.JSONHandler)
		if isText != tt.text || isJSON == tt.text {
			t.Errorf("%s: handler %T", tt.name, log.Handler())
		}
	}
}
