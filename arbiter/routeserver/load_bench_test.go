package routeserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
)

// BenchmarkRouteLoad measures route load: `members` members announce
// `routes` registered routes between them to a freshly started route
// server; the benchmark times from the moment the members' sessions are
// enabled until the route server holds every route, received and accepted
// by the Checker, and measures the CPU time and memory that took. In the
// same iteration it does the same with BIRD 2 as the route server (the
// baseline), fed by the same member routers with the same routes. Needs
// root and BIRD 2. Run:
//
//	go test -run '^$' -bench RouteLoad -benchtime 1x ./arbiter/routeserver/
//
// (-benchtime 3x averages three runs.) The members are one BIRD (the
// "crowd", a table per session) with a session per member router address:
// each member has an IPv4 router and, in the mixed cases, an IPv6 router
// too (two sessions; half of the routes are IPv6 /48s). The crowd loads
// its routes with the sessions disabled; the clock starts when they are
// enabled, so the times include session setup (BIRD's 1 s connect delay,
// the same for both).
//
// Ours: the Server in a process of its own (BenchmarkLoadChild) in the
// route server's namespace, checking each route against a map of the
// registered routes (prefix -> member). Done when the Stats of every
// member count all routes accepted. Memory: the growth of the process's
// VmRSS and of its Go heap in use (after GC) from just before the
// sessions are enabled; the registered-route map is in place before.
//
// BIRD: a plain route server (rs client, export none), each session's
// import filter checking that the first AS is the member's and the prefix
// is in a prefix set of that member's registered routes (the same check;
// rejected routes are not kept: no import table). Done when
// `birdc show route table all count` counts them all. Memory: the growth
// of the bird process's VmRSS (its prefix sets are in place before).
//
// Metrics: ours_s, bird_s, time_ratio (ours/BIRD); ours_cpu_s,
// bird_cpu_s, cpu_ratio (CPU time of the route server process while
// loading); ours_rss_MB, bird_rss_MB, mem_ratio (RSS growth, ours/BIRD);
// ours_heap_MB. The log has the timeline (first route, all sessions up as
// the members see them, all routes) and absolute memory figures. On a
// shared, busy machine the wall times vary by a second or more between
// runs; the CPU times are steadier.
//
// ROUTESERVER_BENCH_PROFILE=<dir> makes our route server's process write
// CPU and heap profiles and an execution trace of the load there.
//
// ROUTESERVER_LOAD=<members>/<routes> adds a mixed case of that size (at
// most 180 members), e.g. 150/1000000: 300 sessions, 1M routes.
func BenchmarkRouteLoad(b *testing.B) {
	type loadCase struct {
		name            string
		members, routes int
		mixed           bool
	}
	cases := []loadCase{
		{"members=2/routes=1k/mixed", 2, 1000, true},
		{"members=50/routes=1k/ipv4", 50, 1000, false},
		{"members=50/routes=200k/ipv4", 50, 200_000, false},
		{"members=50/routes=200k/mixed", 50, 200_000, true},
	}
	if env := os.Getenv("ROUTESERVER_LOAD"); env != "" {
		ms, rs, _ := strings.Cut(env, "/")
		m, err1 := strconv.Atoi(ms)
		r, err2 := strconv.Atoi(rs)
		if err1 != nil || err2 != nil || m < 1 || m > 180 || r < m {
			b.Fatalf("ROUTESERVER_LOAD=%q: want <members>/<routes>, 1 to 180 members", env)
		}
		cases = append(cases, loadCase{fmt.Sprintf("members=%d/routes=%d/mixed", m, r), m, r, true})
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			needBIRD(b)
			if err := labnet.NeedsRoot(); err != nil {
				b.Skip(err)
			}
			in := newLoadInput(c.members, c.routes, c.mixed)
			var ours, bird loadResult
			for range b.N {
				o := loadOurs(b, in)
				bi := loadBIRD(b, in)
				b.Logf("ours: %v", o)
				b.Logf("BIRD: %v", bi)
				ours.add(o)
				bird.add(bi)
			}
			n := float64(b.N)
			b.ReportMetric(ours.dur.Seconds()/n, "ours_s")
			b.ReportMetric(bird.dur.Seconds()/n, "bird_s")
			b.ReportMetric(ours.dur.Seconds()/bird.dur.Seconds(), "time_ratio")
			b.ReportMetric(float64(ours.heap)/1e6/n, "ours_heap_MB")
			b.ReportMetric(float64(ours.rss)/1e6/n, "ours_rss_MB")
			b.ReportMetric(float64(bird.rss)/1e6/n, "bird_rss_MB")
			b.ReportMetric(float64(ours.rss)/float64(bird.rss), "mem_ratio")
			b.ReportMetric(ours.cpu.Seconds()/n, "ours_cpu_s")
			b.ReportMetric(bird.cpu.Seconds()/n, "bird_cpu_s")
			b.ReportMetric(ours.cpu.Seconds()/bird.cpu.Seconds(), "cpu_ratio")
			b.ReportMetric(0, "ns/op") // the ratios say it
		})
	}
}

// loadInput is what the members announce: the same for both route
// servers.
type loadInput struct {
	members int
	mixed   bool
	// perMember holds each member's routes, IPv4 first.
	perMember [][]netip.Prefix
	owner     map[netip.Prefix]uint32
	total     int
}

func newLoadInput(members, routes int, mixed bool) *loadInput {
	in := &loadInput{members: members, mixed: mixed, perMember: make([][]netip.Prefix, members),
		owner: make(map[netip.Prefix]uint32, routes), total: routes}
	v4 := routes
	if mixed {
		v4 = routes / 2
	}
	for i := range routes {
		var p netip.Prefix
		if i < v4 {
			p = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(10 + i>>16), byte(i >> 8), byte(i), 0}), 24)
		} else {
			// /48s from 3fff::/20 (RFC 9637, documentation).
			j := i - v4
			p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x3f, 0xff, 0, byte(j >> 16), byte(j >> 8), byte(j)}), 48)
		}
		m := i % members
		in.perMember[m] = append(in.perMember[m], p)
		in.owner[p] = sellerASN(m)
	}
	return in
}

// Member router (crowd) and route server addresses on the lab LAN: 90
// members a /24, a member's pair in the same one.
func crowd4(m int) netip.Addr  { return lan4(m, 10) }
func rs4Addr(m int) netip.Addr { return lan4(m, 100) }

func lan4(m, base int) netip.Addr {
	nets := [][3]byte{{192, 0, 2}, {198, 51, 100}}
	n := nets[m/90]
	return netip.AddrFrom4([4]byte{n[0], n[1], n[2], byte(base + m%90)})
}
func crowd6(m int) netip.Addr  { return netip.MustParseAddr(fmt.Sprintf("2001:db8::1:%x", m)) }
func rs6Addr(m int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("2001:db8::2:%x", m)) }

// loadLab makes a lab with the route server's host and the crowd's.
func loadLab(b *testing.B, in *loadInput, label string) (lab *labnet.Lab, rs, crowd *labnet.Host) {
	lab = labtest.New(b, label)
	var rsAddrs, crowdAddrs []string
	for m := range in.members {
		rsAddrs = append(rsAddrs, rs4Addr(m).String()+"/24")
		crowdAddrs = append(crowdAddrs, crowd4(m).String()+"/24")
		if in.mixed {
			rsAddrs = append(rsAddrs, rs6Addr(m).String()+"/64")
			crowdAddrs = append(crowdAddrs, crowd6(m).String()+"/64")
		}
	}
	rs = labtest.AddHost(b, lab, "rs", rsAddrs...)
	crowd = labtest.AddHost(b, lab, "crowd", crowdAddrs...)
	return lab, rs, crowd
}

// loadResult is one route server's load.
type loadResult struct {
	timeline
	heap int64 // Go heap in use growth (ours only)
	rss  int64 // VmRSS growth
	cpu  time.Duration
	// crowdCPU is the member routers' CPU time meanwhile.
	crowdCPU time.Duration
	// absolute values at the end
	heapEnd, rssEnd int64
}

func (r *loadResult) add(o loadResult) {
	r.dur += o.dur
	r.up += o.up
	r.first += o.first
	r.heap += o.heap
	r.rss += o.rss
	r.cpu += o.cpu
}

func (r loadResult) String() string {
	s := fmt.Sprintf("first route after %v, all sessions up after %v, all routes after %v; CPU %v (member routers' %v); RSS +%.1f MB (%.1f MB at the end)",
		r.first.Round(time.Millisecond), r.up.Round(time.Millisecond), r.dur.Round(time.Millisecond), r.cpu.Round(time.Millisecond), r.crowdCPU.Round(time.Millisecond), float64(r.rss)/1e6, float64(r.rssEnd)/1e6)
	if r.heapEnd != 0 {
		s += fmt.Sprintf("; Go heap in use +%.1f MB (%.1f MB at the end)", float64(r.heap)/1e6, float64(r.heapEnd)/1e6)
	}
	return s
}

// loadOurs runs the load against our route server, in a process of its
// own (this test binary, BenchmarkLoadChild) inside the route server's
// namespace: like the arbiter, and not on the thread labnet's Host.Do
// locks in the namespace (a locked goroutine waits long for a CPU when
// the process is busy, which would slow GoBGP's event loop), and its
// memory is its own.
func loadOurs(b *testing.B, in *loadInput) loadResult {
	lab, rsHost, crowdHost := loadLab(b, in, "load")
	defer lab.Close() // also at cleanup, if this fails
	rs := startLoadChild(b, rsHost, in)
	defer rs.stop()
	crowd := startLoadCrowd(b, crowdHost, in)
	ready := rs.call(b, "ready") // sessions accept connections
	pid := rs.pid()
	rss0, cpu0 := vmRSS(b, pid), procCPU(b, pid)
	crowdPid := crowd.pid(b)
	crowd0 := procCPU(b, crowdPid)
	rs.call(b, "go")
	start := clock.Now()
	crowd.enable(b)
	tl := waitLoad(b, start, in, func() (int, error) {
		r := rs.call(b, "routes")
		if r.Rejected != 0 {
			return 0, fmt.Errorf("route server rejected %d routes", r.Rejected)
		}
		return r.Accepted, nil
	}, crowd.established)
	r := loadResult{timeline: tl, cpu: procCPU(b, pid) - cpu0, crowdCPU: procCPU(b, crowdPid) - crowd0}
	r.rssEnd = vmRSS(b, pid)
	r.rss = r.rssEnd - rss0
	done := rs.call(b, "done")
	if done.Rejected != 0 {
		b.Fatalf("route server rejected %d routes", done.Rejected)
	}
	r.heapEnd = done.Heap
	r.heap = done.Heap - ready.Heap
	return r
}

// loadChildEnv carries the loadInput parameters to the route server
// process.
const loadChildEnv = "ROUTESERVER_LOAD_CHILD"

type loadChildConfig struct {
	Members, Routes int
	Mixed           bool
}

// loadChildReply is the route server process's answer to a command.
type loadChildReply struct {
	Err                string
	Accepted, Rejected int
	Heap               int64 // Go heap in use after GC (ready, done)
}

// loadChild is the route server process, driven over its stdin and
// stdout (lines "loadchild: <JSON reply>"; the test framework's own
// output is skipped).
type loadChild struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

const loadChildPrefix = "loadchild: "

func startLoadChild(b *testing.B, h *labnet.Host, in *loadInput) *loadChild {
	cfg, _ := json.Marshal(loadChildConfig{Members: in.members, Routes: in.total, Mixed: in.mixed})
	cmd := h.Command(b.Context(), os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkLoadChild$", "-test.benchtime=1x")
	cmd.Env = append(os.Environ(), loadChildEnv+"="+string(cfg))
	cmd.Stderr = tWriter{b}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &loadChild{cmd: cmd, in: stdin, out: bufio.NewScanner(stdout)}
	c.out.Buffer(nil, 1<<20)
	return c
}

// pid is the route server process's ID (`ip netns exec` execs it).
func (c *loadChild) pid() int { return c.cmd.Process.Pid }

func (c *loadChild) call(b *testing.B, op string) loadChildReply {
	b.Helper()
	if _, err := fmt.Fprintln(c.in, op); err != nil {
		b.Fatalf("route server process: %s: %v", op, err)
	}
	for c.out.Scan() {
		line, ok := strings.CutPrefix(c.out.Text(), loadChildPrefix)
		if !ok {
			continue
		}
		var r loadChildReply
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			b.Fatalf("route server process: %s: %v", op, err)
		}
		if r.Err != "" {
			b.Fatalf("route server process: %s: %s", op, r.Err)
		}
		return r
	}
	b.Fatalf("route server process: %s: no reply (%v)", op, c.out.Err())
	return loadChildReply{}
}

// stop ends the route server process: EOF on its stdin stops the route
// server; it is killed if it takes longer than 20 s.
func (c *loadChild) stop() {
	c.in.Close()
	timer := time.AfterFunc(20*time.Second, func() { c.cmd.Process.Kill() })
	c.cmd.Wait()
	timer.Stop()
}

// BenchmarkLoadChild is the route server process of BenchmarkRouteLoad;
// run by itself it skips.
func BenchmarkLoadChild(b *testing.B) {
	cfg := os.Getenv(loadChildEnv)
	if cfg == "" {
		b.Skip("the route server process of BenchmarkRouteLoad, started by it")
	}
	if err := runLoadChild(b, cfg); err != nil {
		fmt.Printf("%s{\"Err\":%q}\n", loadChildPrefix, err.Error())
		b.Fatal(err)
	}
}

func runLoadChild(b *testing.B, cfgJSON string) error {
	var cfg loadChildConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return fmt.Errorf("%s: %v", loadChildEnv, err)
	}
	in := newLoadInput(cfg.Members, cfg.Routes, cfg.Mixed)
	checker := CheckerFunc(func(asn uint32, p netip.Prefix, _ uint32) (bool, string) {
		if in.owner[p] == asn {
			return true, ""
		}
		return false, "not registered"
	})
	rs, err := New(Config{ASN: rsASN, RouterID: rs4, Checker: checker, Log: testLog(b),
		HoldTime: 90 * time.Second, Passive: true})
	if err != nil {
		return err
	}
	defer rs.Stop()
	ctx := context.Background()
	if err := rs.Start(ctx); err != nil {
		return err
	}
	for m := range in.members {
		addrs := []netip.Addr{crowd4(m)}
		if in.mixed {
			addrs = append(addrs, crowd6(m))
		}
		if err := rs.AddMember(ctx, Member{ASN: sellerASN(m), Addresses: addrs}); err != nil {
			return err
		}
	}
	stopProfile := func() {}
	defer func() { stopProfile() }()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var r loadChildReply
		switch op := sc.Text(); op {
		case "ready":
			// GoBGP takes a moment to move new sessions from Idle to
			// Active (accepting connections); BIRD listens at once.
			deadline := clock.Now().Add(time.Minute)
			for {
				ss, err := rs.Sessions(ctx)
				if err != nil {
					return err
				}
				idle := slices.ContainsFunc(ss, func(s Session) bool { return s.State != "Active" })
				if !idle {
					break
				}
				if clock.Now().After(deadline) {
					return fmt.Errorf("sessions not accepting connections after a minute: %v", ss)
				}
				time.Sleep(20 * time.Millisecond)
			}
			r.Heap = goHeap()
		case "go":
			if stopProfile, err = startLoadProfile(); err != nil {
				return err
			}
		case "routes", "done":
			for m := range in.members {
				st := rs.Stats(sellerASN(m))
				r.Accepted += st.Accepted
				r.Rejected += st.Rejected
			}
			if op == "done" {
				stopProfile()
				r.Heap = goHeap()
				if err := writeHeapProfile(); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("unknown command %q", op)
		}
		out, _ := json.Marshal(r)
		fmt.Printf("%s%s\n", loadChildPrefix, out)
	}
	return sc.Err()
}

// loadBIRD runs the load against BIRD as the route server.
func loadBIRD(b *testing.B, in *loadInput) loadResult {
	lab, rsHost, crowdHost := loadLab(b, in, "loadbird")
	defer lab.Close()
	rs := startBIRDRouteServer(b, rsHost, in)
	crowd := startLoadCrowd(b, crowdHost, in)
	pid := rs.pid(b)
	rss0, cpu0 := vmRSS(b, pid), procCPU(b, pid)
	crowdPid := crowd.pid(b)
	crowd0 := procCPU(b, crowdPid)
	start := clock.Now()
	crowd.enable(b)
	tl := waitLoad(b, start, in, rs.routeCount, crowd.established)
	r := loadResult{timeline: tl, cpu: procCPU(b, pid) - cpu0, crowdCPU: procCPU(b, crowdPid) - crowd0}
	r.rssEnd = vmRSS(b, pid)
	r.rss = r.rssEnd - rss0
	if mem, err := rs.birdc("show", "memory"); err == nil {
		b.Logf("BIRD route server: show memory:\n%s", mem)
	}
	return r
}

// timeline is how a load went, from the sessions' enabling.
type timeline struct {
	first time.Duration // the first route is in
	up    time.Duration // every session is established
	dur   time.Duration // every route is in
}

// waitLoad polls the route server until it holds every route: routes
// counts them, up counts established sessions (polled only until all are
// up). It logs the progress every second and fails after a minute
// without progress.
func waitLoad(b *testing.B, start time.Time, in *loadInput, routes, up func() (int, error)) timeline {
	b.Helper()
	sessions := in.members
	if in.mixed {
		sessions *= 2
	}
	var tl timeline
	lastLog, lastChange, lastN := start, start, -1
	for {
		now := clock.Now()
		n, err := routes()
		if err != nil {
			b.Fatal(err)
		}
		if n > 0 && tl.first == 0 {
			tl.first = now.Sub(start)
		}
		nup := sessions
		if tl.up == 0 {
			if nup, err = up(); err != nil {
				b.Fatal(err)
			}
			if nup == sessions {
				tl.up = now.Sub(start)
			}
		}
		if n == in.total {
			tl.dur = now.Sub(start)
			return tl
		}
		if now.Sub(lastLog) >= time.Second {
			lastLog = now
			b.Logf("  %v: %d of %d sessions up, %d of %d routes", now.Sub(start).Round(time.Millisecond), nup, sessions, n, in.total)
		}
		if n != lastN {
			lastN, lastChange = n, now
		}
		if now.Sub(lastChange) > time.Minute {
			b.Fatalf("no progress for a minute: after %v, %d of %d sessions up, %d of %d routes", now.Sub(start).Round(time.Millisecond), nup, sessions, n, in.total)
		}
		time.Sleep(50 * time.Millisecond) // each poll costs BIRD a birdc connection
	}
}

// birdProc is a BIRD started by the benchmark.
type birdProc struct {
	dir string
	h   *labnet.Host
}

func (p *birdProc) ctl() string { return filepath.Join(p.dir, "bird.ctl") }

func startBIRD(b *testing.B, h *labnet.Host, conf string) *birdProc {
	p := &birdProc{dir: b.TempDir(), h: h}
	path := filepath.Join(p.dir, "bird.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	// A configuration error ends BIRD at once: wait for its control
	// socket or its exit.
	proc, err := h.Start(b.Context(), filepath.Join(p.dir, "bird.log"), "bird", "-f", "-c", path, "-s", p.ctl(), "-P", filepath.Join(p.dir, "bird.pid"))
	if err != nil {
		b.Fatal(err)
	}
	eventually(b, time.Minute, "BIRD "+h.Name+" up", func() string {
		select {
		case <-proc.Done():
			log, _ := os.ReadFile(filepath.Join(p.dir, "bird.log"))
			b.Fatalf("BIRD %s exited: %s", h.Name, log)
		default:
		}
		if _, err := p.birdc("show", "status"); err != nil {
			return err.Error()
		}
		return ""
	})
	return p
}

func (p *birdProc) birdc(args ...string) (string, error) {
	out, err := exec.Command("birdc", append([]string{"-s", p.ctl()}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("birdc %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (p *birdProc) pid(b *testing.B) int {
	s, err := os.ReadFile(filepath.Join(p.dir, "bird.pid"))
	if err != nil {
		b.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(s)))
	if err != nil {
		b.Fatalf("BIRD pid file: %v", err)
	}
	return pid
}

// routeTotalRE matches BIRD 2's "Total: 10 of 10 routes for 10 networks in 2 tables".
var routeTotalRE = regexp.MustCompile(`(?m)^Total: (\d+) of \d+ routes`)

// routeCount is BIRD's count of routes in all its tables.
func (p *birdProc) routeCount() (int, error) {
	out, err := p.birdc("show", "route", "table", "all", "count")
	if err != nil {
		return 0, err
	}
	m := routeTotalRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("unexpected show route count: %q", out)
	}
	return strconv.Atoi(m[1])
}

// loadCrowd is the member routers: one BIRD, sessions disabled until
// enable.
type loadCrowd struct{ *birdProc }

func startLoadCrowd(b *testing.B, h *labnet.Host, in *loadInput) loadCrowd {
	var w strings.Builder
	fmt.Fprintf(&w, "log stderr { warning, error, fatal };\nrouter id %s;\nprotocol device {}\n", h.Addr4())
	for m, ps := range in.perMember {
		for _, fam := range []string{"ipv4", "ipv6"} {
			if fam == "ipv6" && !in.mixed {
				continue
			}
			local, nbr := crowd4(m), rs4Addr(m)
			if fam == "ipv6" {
				local, nbr = crowd6(m), rs6Addr(m)
			}
			// A table per session: BIRD's export walks the whole table
			// for each session, which with one table for all would make
			// the crowd, not the route server, the bottleneck.
			fmt.Fprintf(&w, "%s table t%d_%s;\nprotocol static st%d_%s { %s { table t%d_%s; };\n", fam, m, fam, m, fam, fam, m, fam)
			for _, p := range ps {
				if p.Addr().Is4() == (fam == "ipv4") {
					fmt.Fprintf(&w, " route %s unreachable;\n", p)
				}
			}
			fmt.Fprintf(&w, "}\nprotocol bgp m%d_%s {\n disabled;\n local %s as %d;\n neighbor %s as %d;\n", m, fam, local, sellerASN(m), nbr, rsASN)
			fmt.Fprintf(&w, " connect delay time 1; connect retry time 1; error wait time 1,2;\n %s { table t%d_%s; import none; export all; };\n}\n", fam, m, fam)
		}
	}
	c := loadCrowd{startBIRD(b, h, w.String())}
	// The static routes are loaded before the clock starts.
	eventually(b, time.Minute, "crowd routes loaded", func() string {
		n, err := c.routeCount()
		if err != nil {
			return err.Error()
		}
		if n != in.total {
			return fmt.Sprintf("%d of %d", n, in.total)
		}
		return ""
	})
	return c
}

// established counts the member sessions up, as the members see them
// (the same view for both route servers).
func (c loadCrowd) established() (int, error) {
	out, err := c.birdc("show", "protocols")
	return strings.Count(out, "Established"), err
}

// enable starts every member session.
func (c loadCrowd) enable(b *testing.B) {
	out, err := c.birdc("enable", `"m*"`)
	if err != nil {
		b.Fatal(err)
	}
	if !strings.Contains(out, "enabled") {
		b.Fatalf("crowd: enable sessions: %s", out)
	}
}

// startBIRDRouteServer runs BIRD as a plain route server for the members.
func startBIRDRouteServer(b *testing.B, h *labnet.Host, in *loadInput) *birdProc {
	var w strings.Builder
	fmt.Fprintf(&w, "log stderr { warning, error, fatal };\nrouter id %s;\nprotocol device {}\n", rs4)
	for m, ps := range in.perMember {
		for _, fam := range []string{"ipv4", "ipv6"} {
			if fam == "ipv6" && !in.mixed {
				continue
			}
			local, nbr := rs4Addr(m), crowd4(m)
			if fam == "ipv6" {
				local, nbr = rs6Addr(m), crowd6(m)
			}
			fmt.Fprintf(&w, "protocol bgp m%d_%s {\n local %s as %d;\n neighbor %s as %d;\n passive on;\n rs client;\n", m, fam, local, rsASN, nbr, sellerASN(m))
			fmt.Fprintf(&w, " %s {\n  export none;\n  import filter {\n   if bgp_path.first != %d then reject;\n   if net ~ [", fam, sellerASN(m))
			first := true
			for _, p := range ps {
				if p.Addr().Is4() == (fam == "ipv4") {
					if !first {
						w.WriteByte(',')
					}
					first = false
					fmt.Fprintf(&w, "\n    %s", p)
				}
			}
			w.WriteString("\n   ] then accept;\n   reject;\n  };\n };\n}\n")
		}
	}
	return startBIRD(b, h, w.String())
}

// loadProfileEnv names a directory: if set, our route server's process
// writes load.cpu (CPU profile of the load only), load.trace (execution
// trace of it) and load.heap (heap profile when every route is in) there.
const loadProfileEnv = "ROUTESERVER_BENCH_PROFILE"

func startLoadProfile() (stop func(), err error) {
	dir := os.Getenv(loadProfileEnv)
	if dir == "" {
		return func() {}, nil
	}
	f, err := os.Create(filepath.Join(dir, "load.cpu"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	tf, err := os.Create(filepath.Join(dir, "load.trace"))
	if err != nil {
		pprof.StopCPUProfile()
		f.Close()
		return nil, err
	}
	if err := trace.Start(tf); err != nil {
		pprof.StopCPUProfile()
		f.Close()
		tf.Close()
		return nil, err
	}
	return sync.OnceFunc(func() {
		trace.Stop()
		tf.Close()
		pprof.StopCPUProfile()
		f.Close()
	}), nil
}

func writeHeapProfile() error {
	dir := os.Getenv(loadProfileEnv)
	if dir == "" {
		return nil
	}
	f, err := os.Create(filepath.Join(dir, "load.heap"))
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("heap").WriteTo(f, 0)
}

// goHeap is the Go heap in use after a collection.
func goHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// vmRSS reads a process's resident set size.
func vmRSS(b *testing.B, pid int) int64 {
	f, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(f))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("/proc/%d/status: VmRSS %q: %v", pid, rest, err)
			}
			return kb * 1024
		}
	}
	b.Fatalf("/proc/%d/status: no VmRSS", pid)
	return 0
}

// procCPU is a process's user and system CPU time.
func procCPU(b *testing.B, pid int) time.Duration {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) in ")".
	i := bytes.LastIndexByte(s, ')')
	f := strings.Fields(string(s[i+1:]))
	if len(f) < 13 {
		b.Fatalf("/proc/%d/stat: too short", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	// USER_HZ is 100 on Linux.
	return time.Duration(ut+st) * 10 * time.Millisecond
}
