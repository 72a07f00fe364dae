package daemon

import (
	"net"
	"sync"
	"syscall"
)

var umaskMu sync.Mutex

// listenWithUmask binds a unix socket that nobody but the owner can open
// from the first instant.
func listenWithUmask(path string) (net.Listener, error) {
	umaskMu.Lock()
	defer umaskMu.Unlock()
	old := syscall.Umask(0o177)
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}
