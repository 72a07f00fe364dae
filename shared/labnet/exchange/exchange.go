// Package exchange builds a whole bwx exchange in a labnet lab: the trading
// switch, an arbiter and member hosts, each member with its own agent,
// driven through the real binaries and commands an operator and a member
// would use. The lab command and the end-to-end tests share it; later parts
// (BGP, traffic, probes) extend the same Exchange.
package exchange

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bwxchange/bwx/shared/labnet"
)

// Member is one member network of the lab.
type Member struct {
	Name     string
	ASN      uint32
	Host     *labnet.Host
	Capacity string
	// Prefixes registered for the member (its customer routes).
	Prefixes []string
	Config   string
	Bundle   string
	Log      string
	agent    *labnet.Proc
}

// Exchange is a running lab exchange.
type Exchange struct {
	Lab     *labnet.Lab
	Dir     string
	Bin     Binaries
	Arbiter *labnet.Host
	// ArbiterConfig is the arbiter's config file and ArbiterLog its log.
	ArbiterConfig, ArbiterLog string
	Members                   []*Member
	arbiter                   *labnet.Proc
}

// Binaries are the paths of the programs the lab runs.
type Binaries struct {
	Arbiter, Agent string
}

// Build compiles the daemons into dir.
func Build(ctx context.Context, dir string) (Binaries, error) {
	b := Binaries{Arbiter: filepath.Join(dir, "bwx-arbiter"), Agent: filepath.Join(dir, "bwx-agent")}
	for path, pkg := range map[string]string{b.Arbiter: "github.com/bwxchange/bwx/arbiter/cmd/bwx-arbiter", b.Agent: "github.com/bwxchange/bwx/agent/cmd/bwx-agent"} {
		out, err := exec.CommandContext(ctx, "go", "build", "-o", path, pkg).CombinedOutput()
		if err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return b, nil
}

// The exchange LAN: the arbiter is .1 / ::1, members follow.
var (
	lan4 = netip.MustParsePrefix("192.0.2.0/24")
	lan6 = netip.MustParsePrefix("2001:db8:ffff::/64")
)

func lanAddrs(n int) []netip.Prefix {
	a4 := lan4.Addr().As4()
	a4[3] = byte(n)
	// ::11 for .11, so both families read alike in a BGP table.
	hex, _ := strconv.ParseUint(strconv.Itoa(n), 16, 16)
	a6 := lan6.Addr().As16()
	a6[14], a6[15] = byte(hex>>8), byte(hex)
	return []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4(a4), 24), netip.PrefixFrom(netip.AddrFrom16(a6), 64)}
}

// DefaultMembers are two sellers and a buyer with IPv4 and IPv6 routes.
func DefaultMembers() []*Member {
	return []*Member{
		{Name: "seller-a", ASN: 64501, Capacity: "10G", Prefixes: []string{"198.51.100.0/24", "2001:db8:100::/48"}},
		{Name: "seller-b", ASN: 64502, Capacity: "10G", Prefixes: []string{"203.0.113.0/24", "2001:db8:200::/48"}},
		{Name: "buyer", ASN: 64510, Capacity: "10G"},
	}
}

// Up builds the lab: namespaces, the switch, the arbiter with its CA, the
// members registered with their certificates and prefixes, and an agent
// per member. On error everything made so far is torn down.
func Up(ctx context.Context, dir string, bin Binaries, members []*Member) (x *Exchange, err error) {
	lab, err := labnet.New("exchange")
	if err != nil {
		return nil, err
	}
	x = &Exchange{Lab: lab, Dir: dir, Bin: bin, Members: members}
	defer func() {
		if err != nil {
			x.Close()
			x = nil
		}
	}()
	if x.Arbiter, err = lab.AddHost("arbiter", lanAddrs(1)...); err != nil {
		return x, err
	}
	for i, m := range members {
		if m.Host, err = lab.AddHost(m.Name, lanAddrs(11+i)...); err != nil {
			return x, err
		}
	}
	state := filepath.Join(dir, "arbiter")
	x.ArbiterConfig = filepath.Join(dir, "arbiter.yaml")
	x.ArbiterLog = filepath.Join(dir, "arbiter.log")
	cfg := fmt.Sprintf(`# bwx lab arbiter
state_dir: %s
grpc:
  listen: "[::]:7443"
operator:
  socket: %s
metrics:
  listen: "[::]:9470"
log:
  format: json
`, state, filepath.Join(dir, "operator.sock"))
	if err = os.WriteFile(x.ArbiterConfig, []byte(cfg), 0o600); err != nil {
		return x, err
	}
	if _, err = x.Operator(ctx, "ca", "init", "--host", x.Arbiter.Addr4().String(), "--host", x.Arbiter.Addr6().String()); err != nil {
		return x, err
	}
	if x.arbiter, err = x.Arbiter.Start(context.Background(), x.ArbiterLog, bin.Arbiter, "run", "--config", x.ArbiterConfig); err != nil {
		return x, err
	}
	if err = x.waitArbiter(ctx); err != nil {
		return x, err
	}
	for _, m := range members {
		if err = x.addMember(ctx, m); err != nil {
			return x, err
		}
	}
	return x, nil
}

func (x *Exchange) waitArbiter(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := x.Operator(ctx, "member", "list")
		if err == nil {
			return nil
		}
		if x.arbiter.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("the arbiter did not come up: %v\n%s", err, Tail(x.ArbiterLog, 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (x *Exchange) addMember(ctx context.Context, m *Member) error {
	m.Bundle = filepath.Join(x.Dir, m.Name+".pem")
	args := []string{"member", "add", "--asn", fmt.Sprint(m.ASN), "--name", m.Name, "--port", "swp-" + m.Name,
		"--capacity", m.Capacity, "--bundle-out", m.Bundle}
	for _, a := range []netip.Addr{m.Host.Addr4(), m.Host.Addr6()} {
		args = append(args, "--router", a.String())
	}
	if _, err := x.Operator(ctx, args...); err != nil {
		return err
	}
	for _, p := range m.Prefixes {
		if _, err := x.Operator(ctx, "prefix", "add", p, "--member", fmt.Sprint(m.ASN), "--type", "customer"); err != nil {
			return err
		}
	}
	m.Config = filepath.Join(x.Dir, m.Name+".yaml")
	m.Log = filepath.Join(x.Dir, m.Name+".log")
	cfg := fmt.Sprintf("arbiter:\n  address: %q\nbundle: %s\nstate_dir: %s\nlog:\n  format: json\n",
		netip.AddrPortFrom(x.Arbiter.Addr4(), 7443).String(), m.Bundle, filepath.Join(x.Dir, m.Name+"-state"))
	if err := os.WriteFile(m.Config, []byte(cfg), 0o600); err != nil {
		return err
	}
	var err error
	m.agent, err = m.Host.Start(context.Background(), m.Log, x.Bin.Agent, "run", "--config", m.Config)
	return err
}

// RestartArbiter stops the arbiter gracefully and starts it again on the
// same state, as systemctl restart would.
func (x *Exchange) RestartArbiter(ctx context.Context) error {
	if err := x.arbiter.Stop(); err != nil && !x.arbiter.Exited() {
		return err
	}
	var err error
	if x.arbiter, err = x.Arbiter.Start(context.Background(), x.ArbiterLog, x.Bin.Arbiter, "run", "--config", x.ArbiterConfig); err != nil {
		return err
	}
	return x.waitArbiter(ctx)
}

// Member finds a member by name.
func (x *Exchange) Member(name string) *Member {
	for _, m := range x.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Operator runs a bwx-arbiter operator command in the arbiter's namespace.
func (x *Exchange) Operator(ctx context.Context, args ...string) (string, error) {
	return run(x.Arbiter.Command(ctx, x.Bin.Arbiter, append([]string{"--config", x.ArbiterConfig}, args...)...))
}

// Agent runs a bwx-agent command as member m, from m's namespace.
func (x *Exchange) Agent(ctx context.Context, m *Member, args ...string) (string, error) {
	return run(m.Host.Command(ctx, x.Bin.Agent, append([]string{"--config", m.Config}, args...)...))
}

func run(cmd *exec.Cmd) (string, error) {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out), nil
}

// WaitLog waits until the file at path has a line containing every one of
// the substrings, and returns that line.
func WaitLog(ctx context.Context, path string, timeout time.Duration, subs ...string) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := os.Open(path)
		if err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64*1024), 1024*1024)
			for sc.Scan() {
				line := sc.Text()
				ok := true
				for _, s := range subs {
					ok = ok && strings.Contains(line, s)
				}
				if ok {
					f.Close()
					return line, nil
				}
			}
			f.Close()
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s: no line with %q after %v\n%s", path, subs, timeout, Tail(path, 10))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Tail returns the last n lines of a file, for error messages.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Close stops every process and removes every namespace the lab made.
func (x *Exchange) Close() error {
	if x == nil || x.Lab == nil {
		return nil
	}
	return x.Lab.Close()
}
