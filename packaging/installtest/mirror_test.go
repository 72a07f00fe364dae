package installtest

import "testing"

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
