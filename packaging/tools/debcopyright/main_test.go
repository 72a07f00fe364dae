package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const mitText = `The MIT License (MIT)

Copyright (c) 2014 Example Person

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in
all copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN
THE SOFTWARE.
`

// apacheText is the Apache License 2.0, as Debian ships it (the same text
// Go modules carry), so the test does not hold 200 lines of it.
func apacheText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/usr/share/common-licenses/Apache-2.0")
	if err != nil {
		t.Skipf("no Apache-2.0 text on this machine (not Debian?): %v", err)
	}
	return string(b)
}

func TestClassify(t *testing.T) {
	l, err := classify("mit", mitText)
	if err != nil {
		t.Fatal(err)
	}
	if l.expr != "Expat" || !strings.Contains(l.text, "Permission is hereby granted") || len(l.commons) != 0 {
		t.Errorf("MIT: got %+v", l)
	}

	apache := apacheText(t)
	l, err = classify("apache", apache)
	if err != nil {
		t.Fatal(err)
	}
	if l.expr != "Apache-2.0" || l.text != "" || !reflect.DeepEqual(l.commons, []string{"Apache-2.0"}) {
		t.Errorf("Apache: got expr %q commons %v, text %d bytes (want it referred to, not quoted)", l.expr, l.commons, len(l.text))
	}

	// Both in one file (as gopkg.in/yaml.v3 has it): the MIT part is quoted,
	// the Apache part replaced by a reference.
	l, err = classify("both", "Parts MIT, parts Apache.\n\n"+mitText+"\n\n"+apache)
	if err != nil {
		t.Fatal(err)
	}
	if l.expr != "Apache-2.0 and Expat" || !strings.Contains(l.text, "Permission is hereby granted") ||
		strings.Contains(l.text, "TERMS AND CONDITIONS FOR USE") || !strings.Contains(l.text, "/usr/share/common-licenses/Apache-2.0") {
		t.Errorf("MIT and Apache: got expr %q text:\n%s", l.expr, l.text)
	}

	if _, err := classify("none", ""); err == nil {
		t.Error("no licence file: no error")
	}
	if _, err := classify("odd", "You may do what the author says on Tuesdays.\n"); err == nil {
		t.Error("unrecognisable licence: no error")
	}
}

func TestCopyrights(t *testing.T) {
	text := `Copyright (c) 2013 Ben Johnson
Copyright 2009 The Go Authors. All rights reserved.
   Copyright [yyyy] [name of copyright owner]
Redistributions of source code must retain the above copyright
copyright notice, this list of conditions
      (c) You must retain, in the Source form of any Derivative Works
      copyright license to reproduce, prepare Derivative Works of,
© 2020 Someone Else
Copyright (C) Holder Without Year
Copyright (c) 2013 Ben Johnson
`
	want := []string{"2013 Ben Johnson", "2009 The Go Authors", "2020 Someone Else", "Holder Without Year"}
	if got := copyrights(text); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestModuleCopyrightsFromSources(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "pkg", "x")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	src := "// Copyright (C) 2014 Example Corporation.\n//\n// Licensed under the Apache License.\n\npackage x\n\n// Copyright 1999 not a header\n"
	if err := os.WriteFile(filepath.Join(sub, "x.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	// Another file, another year; a test file does not count.
	if err := os.WriteFile(filepath.Join(dir, "y.go"), []byte("// Copyright 2016-2017 Example Corporation\npackage y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "y_test.go"), []byte("// Copyright 2030 Example Corporation\npackage y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := moduleCopyrights(dir, "no notice here", ""); !reflect.DeepEqual(got, []string{"2014-2017 Example Corporation."}) {
		t.Errorf("got %q", got)
	}
}

func TestMergeYears(t *testing.T) {
	got := mergeYears([]string{"2014 NTT.", "2016 NTT", "2009, 2012 B Corp", "The Authors", "2011-2013 B Corp", "The Authors"})
	want := []string{"2009-2013 B Corp", "2014-2016 NTT.", "The Authors"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestField(t *testing.T) {
	var b strings.Builder
	field(&b, "License", "Expat\nline one\n\n\tindented  \nlast")
	want := "License: Expat\n line one\n .\n     indented\n last\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
}

// TestWrite checks the whole file for a program with two modules: one
// Apache (referred to), one MIT (quoted).
func TestWrite(t *testing.T) {
	apache := apacheText(t)
	mk := func(files map[string]string) string {
		dir := t.TempDir()
		for n, c := range files {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	std := module{path: "std", version: "go1.99", dir: mk(map[string]string{"LICENSE": mitText})}
	mods := []module{
		{path: "example.com/a", version: "v1.2.3", sum: "h1:abc=", dir: mk(map[string]string{"LICENSE": apache, "NOTICE": "Copyright 2015 The A Authors\n"})},
		{path: "example.com/b", version: "v0.1.0", dir: mk(map[string]string{"LICENSE.txt": mitText})},
	}
	var b strings.Builder
	p := project{name: "bwx", contact: "x <x@example.org>", source: "https://example.org/bwx", binary: "bwx-agent"}
	if err := write(&b, p, std, mods); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n",
		"\nFiles: *\nCopyright: the bwx authors\nLicense: not-yet-chosen\n",
		"\nFiles: GOROOT/src/*\n example.com/b/*\nCopyright: 2014 Example Person\nLicense: Expat\n",
		"\nFiles: example.com/a/*\nCopyright: 2015 The A Authors\nLicense: Apache-2.0\nComment: Go module example.com/a v1.2.3 (h1:abc=).\n Its NOTICE file:\n",
		"\nLicense: Apache-2.0\n On Debian systems, the complete text of the Apache License, Version 2.0 can be found in /usr/share/common-licenses/Apache-2.0.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "TERMS AND CONDITIONS") {
		t.Errorf("the Apache licence is quoted in full:\n%s", out)
	}
	// Every paragraph is separated by one empty line; no field is empty.
	for _, para := range strings.Split(strings.TrimSuffix(out, "\n"), "\n\n") {
		if strings.TrimSpace(para) == "" || strings.Contains(para, ":\n ") && strings.HasPrefix(para, " ") {
			t.Errorf("bad paragraph %q", para)
		}
	}

	// With a LICENSE at the project's top, it is the project's licence.
	p.licenseText = mitText
	b.Reset()
	if err := write(&b, p, std, mods); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\nFiles: *\nCopyright: the bwx authors\nLicense: Expat\n The MIT License (MIT)\n .\n Copyright (c) 2014 Example Person\n") {
		t.Errorf("project licence from LICENSE not used:\n%s", b.String())
	}
}
