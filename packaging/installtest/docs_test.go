package installtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/buildinfo"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// checkDocs checks what a Debian administrator reads: the manual pages
// through man, the copyright file against the modules really compiled into
// each binary, and the changelog.
func checkDocs(t *testing.T, r *chroot) {
	t.Helper()
	for page, want := range map[string][]string{
		"bwx-agent":              {"bwx-agent - bwx access manager", "SYNOPSIS", "--config", "bwx-agent-order(1)"},
		"bwx-agent-order-buy":    {"bwx-agent-order-buy - ", "--max-latency"},
		"bwx-arbiter":            {"bwx-arbiter - bwx exchange arbiter", "bwx-arbiter-member(1)"},
		"bwx-arbiter-member-add": {"bwx-arbiter-member-add - ", "--asn"},
	} {
		out := r.out("MANWIDTH=200", "man", "-P", "cat", page)
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("man %s does not say %q:\n%s", page, w, out)
			}
		}
	}
	if out, err := r.cmd("man", "-P", "cat", "bwx-agent-gendocs").CombinedOutput(); err == nil {
		t.Errorf("the hidden gendocs command has a manual page:\n%s", out)
	}

	for _, pkg := range []string{"bwx-agent", "bwx-arbiter"} {
		copyright := string(readFile(t, r.path("/usr/share/doc/"+pkg+"/copyright")))
		bi, err := buildinfo.ReadFile(r.path("/usr/bin/" + pkg))
		if err != nil {
			t.Fatalf("%s: %v", pkg, err)
		}
		if len(bi.Deps) < 10 {
			t.Errorf("%s: only %d modules in its build information", pkg, len(bi.Deps))
		}
		for _, d := range bi.Deps {
			if d.Replace != nil {
				d = d.Replace
			}
			// A Files line (first or continuation) and the comment naming
			// the version.
			files := regexp.MustCompile(`(?m)^(Files:)? ` + regexp.QuoteMeta(d.Path) + `/\*$`)
			if !files.MatchString(copyright) || !strings.Contains(copyright, "Go module "+d.Path+" "+d.Version+" ") {
				t.Errorf("%s copyright does not list module %s %s", pkg, d.Path, d.Version)
			}
		}
		checkDEP5(t, pkg, copyright)

		gz := readFile(t, r.path("/usr/share/doc/"+pkg+"/changelog.gz"))
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatalf("%s changelog.gz: %v", pkg, err)
		}
		cl, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s changelog.gz: %v", pkg, err)
		}
		if first, _, _ := strings.Cut(string(cl), "\n"); first != pkg+" ("+v1+") unstable; urgency=medium" {
			t.Errorf("%s changelog starts %q", pkg, first)
		}
		if !regexp.MustCompile(`(?m)^ -- .+ <.+>  [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000$`).Match(cl) {
			t.Errorf("%s changelog has no trailer line:\n%s", pkg, cl)
		}
	}
}

// checkDEP5 checks the copyright file's shape: a header paragraph, Files
// paragraphs with Copyright and License, and a standalone License
// paragraph for every licence that is referred to without its text.
func checkDEP5(t *testing.T, pkg, text string) {
	t.Helper()
	paras := strings.Split(strings.TrimRight(text, "\n"), "\n\n")
	if !strings.HasPrefix(paras[0], "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n") {
		t.Errorf("%s copyright: no Format header", pkg)
	}
	standalone := map[string]bool{}
	referred := map[string]bool{}
	for _, p := range paras[1:] {
		f := map[string]string{}
		for _, l := range strings.Split(p, "\n") {
			if strings.HasPrefix(l, " ") {
				continue
			}
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				t.Errorf("%s copyright: bad line %q", pkg, l)
				continue
			}
			f[k] = strings.TrimSpace(v)
		}
		lic, hasText := f["License"], strings.Contains(p, "\nLicense: "+f["License"]+"\n ") || strings.HasPrefix(p, "License: "+f["License"]+"\n ")
		switch {
		case f["Files"] != "":
			if f["Copyright"] == "" || lic == "" {
				t.Errorf("%s copyright: Files paragraph without Copyright or License:\n%s", pkg, p)
			}
			if !hasText {
				for _, n := range strings.Split(lic, " and ") {
					referred[n] = true
				}
			}
		case lic != "":
			standalone[lic] = true
		default:
			t.Errorf("%s copyright: paragraph with neither Files nor License:\n%s", pkg, p)
		}
	}
	for n := range referred {
		if !standalone[n] {
			t.Errorf("%s copyright: licence %s is referred to but has no License paragraph", pkg, n)
		}
	}
}

// startLintian runs lintian on the packages in the background and returns
// the subtest that waits for it and checks its verdict: no error, no
// warning, and every overridden tag explained by a comment (lintian prints
// an override's comment as N: lines before its O: line).
func startLintian(t *testing.T, debs []string) func(*testing.T) {
	if _, err := exec.LookPath("lintian"); err != nil {
		return func(t *testing.T) {
			t.Skip("lintian is not installed (apt-get install lintian): the packages were not checked")
		}
	}
	var stdout, stderr bytes.Buffer
	// Not --fail-on warning: with --show-overrides lintian counts the
	// overridden warnings too. Warnings are failed on from its output.
	args := append([]string{"--display-info", "--show-overrides", "--tag-display-limit", "0", "--fail-on", "error"}, debs...)
	cmd := exec.CommandContext(t.Context(), "lintian", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		done <- err
	} else {
		go func() { done <- cmd.Wait() }()
	}
	return func(t *testing.T) {
		err := <-done
		out := stdout.String()
		t.Logf("lintian %s:\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Errorf("lintian: %v\n%s", err, stderr.String())
		}
		for _, p := range lintianProblems(out) {
			t.Error(p)
		}
	}
}

// lintianProblems lists what lintian's output must not have: errors,
// warnings, overrides no longer needed, and overrides without a comment.
func lintianProblems(out string) []string {
	var problems []string
	explained := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "E: "), strings.HasPrefix(l, "W: "):
			problems = append(problems, "lintian: "+l)
		case strings.HasPrefix(l, "I: ") && strings.Contains(l, "unused-override"):
			problems = append(problems, "lintian: an override matches nothing: "+l)
		case strings.HasPrefix(l, "O: ") && !explained:
			problems = append(problems, "lintian: override without a comment saying why: "+l)
		}
		explained = strings.HasPrefix(l, "N: ") && strings.TrimSpace(l) != "N:"
	}
	return problems
}
