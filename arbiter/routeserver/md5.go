package routeserver

import (
	"fmt"
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// md5Supported reports whether the kernel accepts TCP MD5 signature keys
// (TCP_MD5SIG, RFC 2385) on a listening socket, as GoBGP sets them. GoBGP
// only logs a warning when it cannot, and the session then never comes
// up: AddMember refuses a password the kernel cannot honour instead. (A
// kernel may accept the key on a fresh socket and refuse it on a
// listening one: probe the latter.)
var md5Supported = sync.OnceValue(func() error {
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return fmt.Errorf("probe listener: %w", err)
	}
	defer l.Close()
	sc, err := l.SyscallConn()
	if err != nil {
		return err
	}
	sig := &unix.TCPMD5Sig{Keylen: 5}
	copy(sig.Key[:], "probe")
	sig.Addr.Family = unix.AF_INET
	copy(sig.Addr.Data[2:6], []byte{192, 0, 2, 1}) // sockaddr_in: port, then address
	var serr error
	if err := sc.Control(func(fd uintptr) {
		serr = unix.SetsockoptTCPMD5Sig(int(fd), unix.IPPROTO_TCP, unix.TCP_MD5SIG, sig)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("setsockopt TCP_MD5SIG: %w", serr)
	}
	return nil
})
