package book_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
	"github.com/bwxchange/bwx/shared/clock"
)

const crashEnv = "BWX_BOOK_CRASH_DB"

// TestMain lets the test binary double as the process the crash test kills.
func TestMain(m *testing.M) {
	if cfg := os.Getenv(crashEnv); cfg != "" {
		crashChild(cfg)
		return
	}
	storetest.Main(m)
}

var crashPorts = map[uint32]int64{64501: 5 * Gbps, 64502: 5 * Gbps, 64510: 4 * Gbps, 64511: 4 * Gbps}

// crashChild places orders from 8 goroutines forever, printing "ack ID
// TRADE..." after each Place returns; the parent kills it mid-flight.
func crashChild(cfg string) {
	ctx := context.Background()
	db, err := store.OpenConfig(storetest.Decode(cfg))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	reg := registry.New(db)
	i := 0
	for asn, capacity := range crashPorts {
		i++
		m := registry.Member{ASN: asn, Name: "n", Port: registry.Port{Name: "p", CapacityBps: capacity},
			Routers: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})}}
		if _, err := reg.AddMember(ctx, m, nil); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		if asn < 64510 {
			reg.AddPrefix(ctx, registry.Prefix{Prefix: netip.MustParsePrefix("198.51.100.0/24"), MemberASN: asn, Type: registry.Customer})
		}
	}
	b, err := book.Start(ctx, db, book.Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var out sync.Mutex
	start := clock.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	for g := 0; g < 8; g++ {
		go func(g int) {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for {
				side, asn := book.Buy, []uint32{64510, 64511}[r.IntN(2)]
				if r.IntN(2) == 0 {
					side, asn = book.Sell, []uint32{64501, 64502}[r.IntN(2)]
				}
				s := book.Spec{Side: side, Destination: book.Destination{Prefix: netip.MustParsePrefix("198.51.100.0/24")},
					Protocol: book.IPv4, CapacityBps: Gbps * int64(1+r.IntN(3)), MinBlockBps: Gbps, PriceMicros: int64(1 + r.IntN(5)),
					TrafficType: book.AnyTraffic, Type: book.Limit}
				// Periods spread over two months, so ports free up and matching goes on.
				s.Start = start.Add(time.Duration(r.IntN(60)) * 24 * time.Hour)
				s.End = s.Start.Add(time.Duration(1+r.IntN(3)) * 24 * time.Hour)
				if side == book.Sell {
					s.Start, s.End = start, start.Add(90*24*time.Hour)
				}
				if side == book.Buy {
					s.Ranking = book.ByPrice
				}
				o, trades, err := b.Place(ctx, asn, s, "")
				if err != nil {
					continue
				}
				line := "ack " + strconv.FormatInt(o.ID, 10)
				for _, t := range trades {
					line += " " + strconv.FormatInt(t.ID, 10)
				}
				out.Lock()
				fmt.Println(line)
				out.Unlock()
			}
		}(g)
	}
	select {}
}

func TestCrashKeepsEveryAcknowledgedOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process; skipped with -short")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 3; round++ {
		cfg := storetest.Config(t)
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with this test, even if it is killed
		cmd.Env = append(os.Environ(), crashEnv+"="+storetest.Encode(cfg))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[int64][]int64{}
		killAfter := 100 + round*150
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if f[0] == "error" {
				cmd.Process.Kill()
				t.Fatal(sc.Text())
			}
			id, _ := strconv.ParseInt(f[1], 10, 64)
			for _, s := range f[2:] {
				tid, _ := strconv.ParseInt(s, 10, 64)
				acked[id] = append(acked[id], tid)
			}
			if _, ok := acked[id]; !ok {
				acked[id] = nil
			}
			if len(acked) == killAfter {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		cmd.Wait()
		if len(acked) < killAfter {
			t.Fatalf("round %d: child died after %d acknowledgements", round, len(acked))
		}

		db, err := store.OpenConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := book.Start(context.Background(), db, book.Options{ExpireEvery: -1})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		trades, _ := b.Trades(ctx, book.Operator, false)
		haveTrade := map[int64]book.Trade{}
		for _, tr := range trades {
			haveTrade[tr.ID] = tr
		}
		for id, tids := range acked {
			if _, err := b.Get(ctx, book.Operator, id); err != nil {
				t.Fatalf("round %d: acknowledged order %d lost: %v", round, id, err)
			}
			for _, tid := range tids {
				if _, ok := haveTrade[tid]; !ok {
					t.Fatalf("round %d: acknowledged trade %d of order %d lost", round, tid, id)
				}
			}
		}
		// The invariants hold on what survived.
		orders, _ := b.Orders(ctx, book.Operator, false)
		filled := map[int64]int64{}
		load := map[uint32][]book.Trade{}
		for _, tr := range trades {
			filled[tr.BuyOrderID] += tr.CapacityBps
			filled[tr.SellOrderID] += tr.CapacityBps
			load[tr.BuyerASN] = append(load[tr.BuyerASN], tr)
			load[tr.SellerASN] = append(load[tr.SellerASN], tr)
		}
		for _, o := range orders {
			if filled[o.ID] != o.FilledBps || o.FilledBps > o.Spec.CapacityBps {
				t.Fatalf("round %d: order %d filled %d, trades %d, capacity %d", round, o.ID, o.FilledBps, filled[o.ID], o.Spec.CapacityBps)
			}
		}
		for asn, ts := range load {
			for _, a := range ts {
				var sum int64
				for _, x := range ts {
					if !x.Start.After(a.Start) && x.End.After(a.Start) {
						sum += x.CapacityBps
					}
				}
				if sum > crashPorts[asn] {
					t.Fatalf("round %d: AS%d port oversold: %d of %d", round, asn, sum, crashPorts[asn])
				}
			}
		}
		// And the book keeps working after the crash.
		var resting int
		b.Inspect(func(e *book.Engine) { resting = e.OpenCount() })
		t.Logf("round %d: %d acknowledged orders, %d trades, %d resting after restart", round, len(acked), len(trades), resting)
		b.Close()
		db.Close()
	}
}
