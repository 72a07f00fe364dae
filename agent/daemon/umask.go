package daemon

import "golang.org/x/sys/unix"

// unixUmask sets the process umask and returns the old one; the socket is
// created 0600 from the start (no window in which others may connect).
func unixUmask(m int) int { return unix.Umask(m) }
