package installtest

import (
	"strings"
	"testing"
)

func TestMirrorIn(t *testing.T) {
	deb822 := `Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Types: deb
# a comment
URIs: http://deb.debian.org/debian http://other.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
`
	if got := mirrorIn(deb822, "bookworm", true); got != "http://deb.debian.org/debian" {
		t.Errorf("deb822: got %q", got)
	}
	if got := mirrorIn(deb822, "trixie", true); got != "" {
		t.Errorf("deb822, other suite: got %q", got)
	}
	list := `# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm contrib main
`
	if got := mirrorIn(list, "bookworm", false); got != "http://mirror.example/debian" {
		t.Errorf("one-line: got %q", got)
	}
	if got := mirrorIn("deb http://x.example/debian bookworm contrib\n", "bookworm", false); got != "" {
		t.Errorf("no main: got %q", got)
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/tmp/a\040b/proc`); got != "/tmp/a b/proc" {
		t.Errorf("got %q", got)
	}
}

func TestLintianProblems(t *testing.T) {
	out := `I: bwx-agent: binary-has-unneeded-section .comment [usr/bin/bwx-agent]
N: /etc/bwx holds keys.
O: bwx-agent: non-standard-dir-perm 0750 != 0755 [etc/bwx/]
O: bwx-agent: non-standard-file-perm 0640 != 0644 [etc/bwx/agent.yaml]
W: bwx-arbiter: hardening-no-pie [usr/bin/bwx-arbiter]
I: bwx-arbiter: unused-override no-manual-page
E: bwx-arbiter: no-copyright-file
`
	got := lintianProblems(out)
	want := []string{
		"lintian: override without a comment saying why: O: bwx-agent: non-standard-file-perm 0640 != 0644 [etc/bwx/agent.yaml]",
		"lintian: W: bwx-arbiter: hardening-no-pie [usr/bin/bwx-arbiter]",
		"lintian: an override matches nothing: I: bwx-arbiter: unused-override no-manual-page",
		"lintian: E: bwx-arbiter: no-copyright-file",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p := lintianProblems("N: reason\nO: a: b\nI: a: c\n"); len(p) != 0 {
		t.Errorf("clean output: %v", p)
	}
}
