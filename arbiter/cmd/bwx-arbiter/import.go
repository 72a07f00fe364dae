package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gaissmai/bart"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/registry/irr"
	"github.com/bwxchange/bwx/arbiter/registry/rpki"
	"github.com/bwxchange/bwx/arbiter/store"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/cli"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/logging"
)

// importCmd loads IRR dumps and ROA exports straight into the database
// file: it works whether or not the daemon runs (sqlite WAL lets the daemon
// go on reading; it waits at most a few seconds to write while the import
// commits). A running daemon picks the data up on its next reload.
func importCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "import", Short: "import IRR route objects or RPKI ROAs into the arbiter's database"}
	var (
		source      string
		allowShrink bool
		maxErrors   int
	)
	// open readies an import: its database, and --max-errors for the
	// importers.
	open := func(cmd *cobra.Command) (*store.DB, context.Context, func(), error) {
		if maxErrors == 0 {
			maxErrors = -1 // 0 means the packages' default
		}
		return g.openStore(cmd)
	}
	irrCmd := &cobra.Command{
		Use:   "irr FILE...",
		Short: "replace the IRR route and route6 objects of the sources the files bring",
		Long: `Reads RPSL dumps (plain or gzip, e.g. ripe.db.route.gz and ripe.db.route6.gz,
radb.db.gz) and replaces, in one transaction, every stored object of each
source the files bring: give all files of one source in one command. With
--source only that source's objects are kept (and objects without a source
attribute are taken as it). Malformed objects are counted and listed, not
fatal; a failed import changes nothing. "-" reads standard input.`,
		Example: `  bwx-arbiter import irr ripe.db.route.gz ripe.db.route6.gz
  bwx-arbiter import irr --source RADB radb.db.gz`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, ctx, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			var in []irr.Input
			for _, name := range args {
				r, closeFile, err := openInput(name, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				defer closeFile()
				in = append(in, irr.Input{Name: name, R: r})
			}
			parsed := func(n int) { fmt.Fprintf(cmd.ErrOrStderr(), "writing %d route objects to %s\n", n, db.Name()) }
			rep, err := irr.Import(ctx, db, in, irr.ImportOptions{Source: source, AllowShrink: allowShrink, MaxErrors: maxErrors, Parsed: parsed})
			return imported(g, cmd, "irr", "route objects", rep, rep.Objects > 0, printIRR, err)
		},
	}
	irrCmd.Flags().StringVar(&source, "source", "", "keep only this IRR source (e.g. RIPE, RADB) and replace it")

	roasCmd := &cobra.Command{
		Use:   "roas FILE",
		Short: "replace the RPKI ROAs with an rpki-client or Routinator JSON export",
		Long: `Reads the validated ROA payloads that rpki-client (json output) or
Routinator (--format json) export, plain or gzip, and replaces every stored
ROA in one transaction. Malformed ROAs are counted and listed; a failed
import changes nothing. "-" reads standard input.`,
		Example: `  bwx-arbiter import roas /var/db/rpki-client/json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, ctx, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			r, closeFile, err := openInput(args[0], cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer closeFile()
			parsed := func(n int) { fmt.Fprintf(cmd.ErrOrStderr(), "writing %d ROAs to %s\n", n, db.Name()) }
			rep, err := rpki.Import(ctx, db, args[0], r, rpki.ImportOptions{AllowShrink: allowShrink, MaxErrors: maxErrors, Parsed: parsed})
			return imported(g, cmd, "roas", "ROAs", rep, rep.ROAs > 0, printROAs, err)
		},
	}
	for _, sub := range []*cobra.Command{irrCmd, roasCmd} {
		sub.Flags().BoolVar(&allowShrink, "allow-shrink", false, "replace a set even if the new one has less than half its objects")
		sub.Flags().IntVar(&maxErrors, "max-errors", 10, "malformed objects to list")
	}
	c.AddCommand(irrCmd, roasCmd, atlasCmd(g))
	return c
}

// imported ends an IRR or ROA import (what: its subcommand; stored: what
// it replaces): a failed one shows the report when it read anything and
// says nothing changed; a done one tells a running arbiter and prints it.
func imported[R any](g *globals, cmd *cobra.Command, what, stored string, rep R, read bool, print func(io.Writer, R), err error) error {
	if err != nil {
		if read {
			print(cmd.ErrOrStderr(), rep)
		}
		return fmt.Errorf("import %s: %w (the stored %s are unchanged)", what, err, stored)
	}
	g.recheck(cmd) // connecting points g.out at os.Stdout
	if g.out.JSON() {
		return cli.Output{W: cmd.OutOrStdout()}.Value(rep)
	}
	print(cmd.OutOrStdout(), rep)
	return nil
}

// atlasCmd imports RIPE Atlas ping results as third-party measurements
// (claim 10): pooled into the exchange's view of each seller's quality,
// never counted as any member's own vantage.
func atlasCmd(g *globals) *cobra.Command {
	var (
		probesFile string
		via        uint32
	)
	c := &cobra.Command{
		Use:   "atlas [--probes probes.json | --via ASN] RESULTS.json",
		Short: "import RIPE Atlas ping results as third-party quality measurements",
		Long: `Reads RIPE Atlas ping results (a JSON array or one result per line, as the
Atlas API and its daily dumps publish them) and stores each as a measurement
of the path through the seller whose network holds the probe, toward the
registered prefix holding the destination. The probe's network comes from
the Atlas probe archive (--probes, {"objects": [{"id", "asn_v4", "asn_v6"}]})
or is one member for the whole file (--via). Results that cannot be placed
(not a ping, unknown probe network, destination outside every registered
prefix, nothing sent) are counted and skipped; a malformed result stops the
import and nothing is stored. Importing the same file again stores nothing
twice. "-" reads standard input.`,
		Example: `  bwx-arbiter import atlas --probes 20260101.json results.json
  bwx-arbiter import atlas --via 64501 results.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (probesFile == "") == (via == 0) {
				return errors.New("import atlas: give exactly one of --probes FILE or --via ASN")
			}
			db, ctx, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			defer done()
			var src quality.AtlasSource
			if via != 0 {
				if _, err := registry.New(db).Member(ctx, via); err != nil {
					return fmt.Errorf("import atlas: --via AS%d: %w", via, err)
				}
				src.Via = func(int64, int) (uint32, bool) { return via, true }
			} else {
				f, err := os.Open(probesFile)
				if err != nil {
					return fmt.Errorf("import atlas: --probes: %w", err)
				}
				probes, err := quality.AtlasProbes(f)
				f.Close()
				if err != nil {
					return fmt.Errorf("import atlas: --probes %s: %w", probesFile, err)
				}
				src.Via = quality.ProbeVia(probes)
			}
			ps, err := registry.New(db).Prefixes(ctx, 0)
			if err != nil {
				return err
			}
			var table bart.Table[netip.Prefix]
			for _, p := range ps {
				table.Insert(p.Prefix, p.Prefix)
			}
			src.Prefix = func(a netip.Addr) (netip.Prefix, bool) { return table.Lookup(a) }
			r, closeFile, err := openInput(args[0], cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer closeFile()
			imp, err := quality.ParseAtlas(r, src)
			if err != nil {
				return fmt.Errorf("import atlas: %s: %w (nothing was stored)", args[0], err)
			}
			rep := atlasReport{Results: imp.Results, Skipped: imp.Skipped}
			m := quality.New(db, nil)
			for b := imp.Measurements; len(b) > 0; {
				n := min(len(b), quality.MaxBatch)
				acc, dup, err := m.ReportThirdParty(ctx, quality.SourceAtlas, b[:n])
				if err != nil {
					return fmt.Errorf("import atlas: %w (%d measurements stored before)", err, rep.Stored)
				}
				rep.Stored += acc
				rep.Duplicates += dup
				b = b[n:]
			}
			if g.out.JSON() {
				return g.out.Value(rep)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d results: %d measurements stored, %d already stored, %d skipped\n",
				rep.Results, rep.Stored, rep.Duplicates, rep.Results-rep.Stored-rep.Duplicates)
			for _, reason := range imp.SkippedReasons() {
				fmt.Fprintf(cmd.OutOrStdout(), "  skipped: %s\n", reason)
			}
			return nil
		},
	}
	c.Flags().StringVar(&probesFile, "probes", "", "Atlas probe archive JSON: each probe's ASN per family")
	c.Flags().Uint32Var(&via, "via", 0, "the member whose network holds every probe of the file")
	return c
}

type atlasReport struct {
	Results    int            `json:"results"`
	Stored     int            `json:"stored"`
	Duplicates int            `json:"duplicates"`
	Skipped    map[string]int `json:"skipped"`
}

// openStore opens the database named by the config. On a fresh install
// (the state directory is there, the database not yet) it creates it where
// the daemon will look, owned as the state directory is, so the daemon
// (user bwx under the package) can write it; without the directory it
// refuses, so an import never makes a stray database the daemon does not
// use.
func (g *globals) openStore(cmd *cobra.Command) (*store.DB, context.Context, func(), error) {
	g.out.W = cmd.OutOrStdout()
	if err := g.out.Check(); err != nil {
		return nil, nil, nil, err
	}
	cfg, err := loadConfigOrDefault(g.configPath)
	if err != nil {
		return nil, nil, nil, err
	}
	if sc := cfg.StoreConfig(); sc.Driver == store.Postgres {
		db, err := store.OpenConfig(sc)
		if err != nil {
			return nil, nil, nil, err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		return db, ctx, func() { stop(); db.Close() }, nil
	}
	path := cfg.StorePath()
	fresh := false
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Dir(path)); err != nil {
			return nil, nil, nil, fmt.Errorf("database %s does not exist, nor its directory (%v): check state_dir and store.path in %s", path, err, g.configPath)
		}
		fresh = true
	}
	db, err := store.Open(path)
	if err != nil {
		return nil, nil, nil, err
	}
	if fresh {
		if err := ownLikeDir(path); err != nil {
			db.Close()
			return nil, nil, nil, err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "created the database %s (a fresh install)\n", path)
	}
	// Ctrl-C rolls the import back instead of leaving it half done.
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	return db, ctx, func() { stop(); db.Close() }, nil
}

// recheck tells a running arbiter to read an import at once (its route
// server re-checks received routes); without one, the import waits for
// the next start, which reads it.
func (g *globals) recheck(cmd *cobra.Command) {
	_, err := cli.Call(g.connect, pb.NewRouteServerServiceClient, pb.RouteServerServiceClient.Recheck, &pb.RecheckRequest{})
	switch {
	case err == nil:
		fmt.Fprintln(cmd.ErrOrStderr(), "the running arbiter re-checks the routes members announce now")
	case status.Code(err) == codes.FailedPrecondition:
		// No route server on it: nothing to re-check.
	default:
		fmt.Fprintf(cmd.ErrOrStderr(), "no running arbiter told (%v): it reads the import when it starts, or within bgp.recheck_interval\n", status.Convert(err).Message())
	}
}

// ownLikeDir gives the database and its sqlite side files the owner of
// their directory, when that differs and we may (root).
func ownLikeDir(path string) error {
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return nil
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chown(p, int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("give %s to the state directory's owner: %w", p, err)
		}
	}
	return nil
}

// openInput opens a file ("-" is standard input) behind a progress display
// on stderr: a bar of the bytes read on a terminal, else a line per 10%.
func openInput(name string, log io.Writer) (io.Reader, func(), error) {
	if name == "-" {
		return os.Stdin, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if fi.IsDir() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is a directory", name)
	}
	if logging.IsTerminal(log) {
		return &barReader{r: f, name: name, size: fi.Size(), w: log}, func() { f.Close() }, nil
	}
	return &logReader{r: f, name: name, size: fi.Size(), w: log, start: clock.Now()}, func() { f.Close() }, nil
}

// barReader shows its bar from the first read, so the bars of several
// files appear one after another as the import reaches them.
type barReader struct {
	r    io.Reader
	name string
	size int64
	w    io.Writer
	bar  *progressbar.ProgressBar
}

func (b *barReader) Read(p []byte) (int, error) {
	if b.bar == nil {
		b.bar = progressbar.NewOptions64(b.size,
			progressbar.OptionSetDescription(b.name),
			progressbar.OptionSetWriter(b.w),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(b.w) }),
		)
	}
	n, err := b.r.Read(p)
	b.bar.Add(n)
	if err == io.EOF {
		b.bar.Finish()
	}
	return n, err
}

// logReader writes a plain line as each tenth of the file is read, for logs.
type logReader struct {
	r       io.Reader
	name    string
	size    int64
	w       io.Writer
	start   time.Time
	read    int64
	tenth   int64 // last reported
	started bool
}

func (l *logReader) Read(p []byte) (int, error) {
	if !l.started {
		fmt.Fprintf(l.w, "reading %s (%s)\n", l.name, byteSize(l.size))
		l.started = true
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	if l.size > 0 {
		if t := l.read * 10 / l.size; t > l.tenth && t < 10 {
			fmt.Fprintf(l.w, "%s: %d%% (%s of %s)\n", l.name, t*10, byteSize(l.read), byteSize(l.size))
			l.tenth = t
		}
	}
	if err == io.EOF && l.tenth < 10 {
		fmt.Fprintf(l.w, "%s: read %s in %.1fs\n", l.name, byteSize(l.read), clock.Since(l.start).Seconds())
		l.tenth = 10
	}
	return n, err
}

func byteSize(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
}

func printIRR(w io.Writer, rep irr.Report) {
	fmt.Fprintf(w, "%d route objects: %d accepted, %d malformed", rep.Objects, rep.Accepted, rep.Malformed)
	if rep.OtherSource > 0 {
		fmt.Fprintf(w, ", %d of other sources skipped", rep.OtherSource)
	}
	if rep.Skipped > 0 {
		fmt.Fprintf(w, "; %d objects of other classes skipped", rep.Skipped)
	}
	fmt.Fprintf(w, " (%.1fs)\n", rep.Finished.Sub(rep.Started).Seconds())
	for _, s := range rep.Sets {
		fmt.Fprintf(w, "  %-12s %d objects (was %d)\n", s.Source, s.Accepted, s.Previous)
	}
	var lines []string
	for _, e := range rep.Errors {
		lines = append(lines, e.String())
	}
	printErrors(w, rep.Malformed, lines)
}

func printROAs(w io.Writer, rep rpki.Report) {
	fmt.Fprintf(w, "%d ROAs: %d accepted, %d malformed; had %d (%.1fs)\n", rep.ROAs, rep.Accepted, rep.Malformed, rep.Previous, rep.Finished.Sub(rep.Started).Seconds())
	var lines []string
	for _, e := range rep.Errors {
		lines = append(lines, e.String())
	}
	printErrors(w, rep.Malformed, lines)
}

func printErrors(w io.Writer, total int, lines []string) {
	if len(lines) == 0 {
		return
	}
	head := "malformed:"
	if total > len(lines) {
		head = fmt.Sprintf("malformed (the first %d of %d):", len(lines), total)
	}
	fmt.Fprintf(w, "%s\n  %s\n", head, strings.Join(lines, "\n  "))
}
