package manager

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// The journal file (the daemon's <state_dir>/decisions.jsonl) holds the
// decisions one JSON object a line, oldest first, so that Restore can put
// hold-downs and the change cap back after a restart.

// AppendJournalFile appends ds to the journal file at path, and rewrites
// it with the last keep decisions when it has grown well past them.
func AppendJournalFile(path string, ds []Decision, keep int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, d := range ds {
		if err := enc.Encode(d); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return err
	}
	// Compact when the file is well past what Restore reads back.
	if fi.Size() > int64(keep)*2*1024 {
		all, err := ReadJournalFile(path, keep)
		if err != nil {
			return err
		}
		tmp := path + ".tmp"
		g, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
		if err != nil {
			return err
		}
		bw := bufio.NewWriter(g)
		enc := json.NewEncoder(bw)
		for _, d := range all {
			enc.Encode(d)
		}
		if err := errors.Join(bw.Flush(), g.Sync(), g.Close()); err != nil {
			return err
		}
		return os.Rename(tmp, path)
	}
	return nil
}

// ReadJournalFile reads the last keep decisions of the journal file. A torn
// last line (a crash mid-write) is skipped; any other bad line is an error
// naming it.
func ReadJournalFile(path string, keep int) ([]Decision, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Decision
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	line := 0
	var bad error
	for sc.Scan() {
		line++
		if bad != nil {
			return nil, bad // a bad line that was not the last
		}
		var d Decision
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			bad = fmt.Errorf("%s:%d: corrupt decision (%v); move the file away to start with an empty journal", path, line, err)
			continue
		}
		out = append(out, d)
		if len(out) > 2*keep {
			out = append(out[:0], out[len(out)-keep:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) > keep {
		out = out[len(out)-keep:]
	}
	return out, nil
}
