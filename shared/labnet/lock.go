package labnet

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Family starts the prefix of every lab: a prefix is Family followed by six
// lower-case hex digits, and every namespace of a lab is <prefix>-<name>.
const Family = "bx"

// lockDir holds one <prefix>.lock file per live lab, flock'ed by the
// process that owns the lab.
const lockDir = "/run/bwx-labnet"

var (
	nsNameRE = regexp.MustCompile(`^` + Family + `[0-9a-f]{6}-.`)
	lockRE   = regexp.MustCompile(`^(` + Family + `[0-9a-f]{6})\.lock$`)
)

func lockPath(prefix string) string { return filepath.Join(lockDir, prefix+".lock") }

// acquirePrefix picks an unused random prefix and returns it with its lock
// file, created and flock'ed atomically (a temporary file is locked first
// and then hard-linked into place, so nobody can see the final name
// unlocked).
func acquirePrefix(label string) (string, *os.File, error) {
	if err := ensureNetnsDir(); err != nil {
		return "", nil, err
	}
	existing, err := List()
	if err != nil {
		return "", nil, err
	}
	for range 32 {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", nil, err
		}
		prefix := Family + hex.EncodeToString(b[:])
		if slices.ContainsFunc(existing, func(n string) bool { return strings.HasPrefix(n, prefix+"-") }) {
			continue
		}
		tmp, err := os.CreateTemp(lockDir, ".tmp-*")
		if err != nil {
			return "", nil, fmt.Errorf("labnet: %w", err)
		}
		if err := unix.Flock(int(tmp.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return "", nil, fmt.Errorf("labnet: lock %s: %w", tmp.Name(), err)
		}
		fmt.Fprintf(tmp, "pid=%d\nlabel=%q\nstarted=%s\n", os.Getpid(), label, time.Now().UTC().Format(time.RFC3339))
		err = os.Link(tmp.Name(), lockPath(prefix))
		os.Remove(tmp.Name())
		if errors.Is(err, fs.ErrExist) {
			tmp.Close()
			continue
		}
		if err != nil {
			tmp.Close()
			return "", nil, fmt.Errorf("labnet: %w", err)
		}
		return prefix, tmp, nil
	}
	return "", nil, errors.New("labnet: no free lab prefix found")
}

// List returns the names of all network namespaces that belong to labs
// (of this process or any other, live or stale), sorted.
func List() ([]string, error) {
	ents, err := os.ReadDir(NetnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("labnet: %w", err)
	}
	var names []string
	for _, e := range ents {
		if nsNameRE.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// RemoveStale deletes the namespaces of labs whose owning process is gone
// (crashed, killed by a test timeout, ...) and kills the processes still
// running in them. Labs of live processes, this one included, are left
// alone, so it is safe to call at any time, also while other tests run. It
// returns the namespaces it removed.
func RemoveStale() ([]string, error) {
	names, err := List()
	if err != nil {
		return nil, err
	}
	byPrefix := map[string][]string{}
	for _, n := range names {
		p := n[:len(Family)+6]
		byPrefix[p] = append(byPrefix[p], n)
	}
	ents, err := os.ReadDir(lockDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("labnet: %w", err)
	}
	for _, e := range ents {
		if m := lockRE.FindStringSubmatch(e.Name()); m != nil {
			if _, ok := byPrefix[m[1]]; !ok {
				byPrefix[m[1]] = nil
			}
		} else if strings.HasPrefix(e.Name(), ".tmp-") {
			removeStaleTemp(filepath.Join(lockDir, e.Name()))
		}
	}
	var removed []string
	var errs []error
	for _, prefix := range slices.Sorted(maps.Keys(byPrefix)) {
		f, err := os.OpenFile(lockPath(prefix), os.O_RDWR, 0)
		switch {
		case err == nil:
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
				f.Close() // held: the lab is alive
				continue
			}
		case errors.Is(err, fs.ErrNotExist):
			// A lab creates its lock before its namespaces and removes it
			// after them, so namespaces without a lock are leftovers.
		default:
			errs = append(errs, fmt.Errorf("labnet: %w", err))
			continue
		}
		// Re-read: the namespaces may have changed since List.
		all, _ := List()
		ids := map[nsID]bool{}
		var mine []string
		for _, n := range all {
			if strings.HasPrefix(n, prefix+"-") {
				mine = append(mine, n)
				if id, err := nsIDOfPath(filepath.Join(NetnsDir, n)); err == nil {
					ids[id] = true
				}
			}
		}
		if err := killNetnsProcs(ids, 5*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("labnet: stale lab %s: %w", prefix, err))
		}
		for _, n := range mine {
			if err := deleteNetns(n); err != nil {
				errs = append(errs, fmt.Errorf("labnet: %w", err))
			} else {
				removed = append(removed, n)
			}
		}
		if err := os.Remove(lockPath(prefix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("labnet: %w", err))
		}
		if f != nil {
			f.Close()
		}
	}
	return removed, errors.Join(errs...)
}

// removeStaleTemp removes a temporary lock file left by a process that died
// inside acquirePrefix.
func removeStaleTemp(path string) {
	fi, err := os.Stat(path)
	if err != nil || time.Since(fi.ModTime()) < time.Minute {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
		os.Remove(path)
	}
}
