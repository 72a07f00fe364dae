// Command debcopyright writes the Debian copyright file (machine-readable
// format, DEP-5) of a package holding one Go program: the project's own
// licence, the Go standard library's and that of every Go module compiled
// into the program.
//
//	debcopyright -binary dist/build/amd64/bwx-agent -repo . >copyright
//
// The modules are those the program's build information lists (`go version
// -m`), which the Go toolchain takes from go.mod and go.sum when it links,
// so the file names exactly what is in the binary for that architecture.
// Each module's licence is read from its LICENSE (or COPYING) file in the
// module cache (fetched with `go mod download`, checked against go.sum) and
// recognised with github.com/google/licensecheck; a licence it cannot
// recognise is an error, so the file never guesses. Licences Debian ships in
// /usr/share/common-licenses are referred to; the others are quoted in full
// from the module, with its copyright lines. A module's NOTICE file (Apache
// 2.0, section 4d) is quoted in the paragraph's comment.
package main

import (
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/google/licensecheck"
)

func main() {
	var p project
	binary := flag.String("binary", "", "the Go program the package installs")
	repo := flag.String("repo", ".", "the project's repository (its LICENSE, and where `go mod download` runs)")
	flag.StringVar(&p.name, "name", "bwx", "Upstream-Name")
	flag.StringVar(&p.contact, "contact", "", "Upstream-Contact")
	flag.StringVar(&p.source, "source", "", "Source (where the source code is)")
	flag.StringVar(&p.copyright, "copyright", "", "the project's Copyright line (default: the authors of -name)")
	flag.Parse()
	if *binary == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(os.Stdout, *binary, *repo, p); err != nil {
		fmt.Fprintln(os.Stderr, "debcopyright:", err)
		os.Exit(1)
	}
}

type project struct {
	name, contact, source, copyright string
	// licenseText is the project's LICENSE (or COPYING) file, "" if it has none.
	licenseText string
	binary      string // installed program, for the header's comment
}

// module is one Go module compiled into the program, with the directory
// holding its source.
type module struct {
	path, version, sum, dir string
}

func run(w io.Writer, binary, repo string, p project) error {
	bi, err := buildinfo.ReadFile(binary)
	if err != nil {
		return err
	}
	p.binary = filepath.Base(binary)
	if p.licenseText, err = licenseFiles(repo); err != nil {
		return err
	}
	var mods []module
	for _, d := range bi.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		if m.Version == "" {
			return fmt.Errorf("%s: module %s is replaced by a directory (%s); its licence cannot be traced to a released module", binary, d.Path, m.Path)
		}
		mods = append(mods, module{path: m.Path, version: m.Version, sum: m.Sum})
	}
	if err := download(repo, mods); err != nil {
		return err
	}
	goroot, err := goEnv(repo, "GOROOT")
	if err != nil {
		return err
	}
	std := module{path: "std", version: bi.GoVersion, dir: goroot}
	return write(w, p, std, mods)
}

// download fills in each module's directory in the module cache, fetching
// it through the module proxy if needed (the go command checks go.sum).
func download(repo string, mods []module) error {
	if len(mods) == 0 {
		return nil
	}
	args := []string{"mod", "download", "-json"}
	for _, m := range mods {
		args = append(args, m.path+"@"+m.version)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = repo
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go mod download: %v\n%s", err, stderr.Bytes())
	}
	dirs := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var r struct{ Path, Version, Dir, Error string }
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("go mod download: %v", err)
		}
		if r.Error != "" {
			return fmt.Errorf("go mod download %s@%s: %s", r.Path, r.Version, r.Error)
		}
		dirs[r.Path+"@"+r.Version] = r.Dir
	}
	for i, m := range mods {
		if mods[i].dir = dirs[m.path+"@"+m.version]; mods[i].dir == "" {
			return fmt.Errorf("go mod download gave no directory for %s@%s", m.path, m.version)
		}
	}
	return nil
}

func goEnv(dir, key string) (string, error) {
	cmd := exec.Command("go", "env", key)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %v", key, err)
	}
	return strings.TrimSpace(string(out)), nil
}

var (
	licenseName = regexp.MustCompile(`(?i)^(licen[cs]e|copying|unlicense)([.-].*)?$`)
	noticeName  = regexp.MustCompile(`(?i)^notice(\..*)?$`)
)

// licenseFiles returns the licence files at the top of dir, concatenated
// in name order ("" if there are none).
func licenseFiles(dir string) (string, error) {
	return topFiles(dir, licenseName)
}

func topFiles(dir string, name *regexp.Regexp) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var parts []string
	for _, e := range ents {
		if e.Type().IsRegular() && name.MatchString(e.Name()) {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return "", err
			}
			parts = append(parts, strings.TrimSpace(string(b)))
		}
	}
	return strings.Join(parts, "\n\n"), nil
}

// common are the licences Debian ships in /usr/share/common-licenses, by
// licensecheck's (SPDX) name.
var common = map[string]string{
	"Apache-2.0":   "Apache-2.0",
	"MPL-2.0":      "MPL-2.0",
	"CC0-1.0":      "CC0-1.0",
	"GPL-2.0":      "GPL-2",
	"GPL-3.0":      "GPL-3",
	"LGPL-2.1":     "LGPL-2.1",
	"LGPL-3.0":     "LGPL-3",
	"Artistic-2.0": "Artistic",
}

// commonTitle is how the standalone License paragraphs name them.
var commonTitle = map[string]string{
	"Apache-2.0": "the Apache License, Version 2.0",
	"MPL-2.0":    "the Mozilla Public License, Version 2.0",
	"CC0-1.0":    "the Creative Commons CC0 1.0 Universal licence",
	"GPL-2":      "the GNU General Public License, version 2",
	"GPL-3":      "the GNU General Public License, version 3",
	"LGPL-2.1":   "the GNU Lesser General Public License, version 2.1",
	"LGPL-3":     "the GNU Lesser General Public License, version 3",
	"Artistic":   "the Artistic License",
}

// dep5Name maps licensecheck's (SPDX) names to the DEP-5 short names where
// they differ.
var dep5Name = map[string]string{
	"MIT":          "Expat",
	"BSD-2-Clause": "BSD-2-clause",
	"BSD-3-Clause": "BSD-3-clause",
	"BSD-4-Clause": "BSD-4-clause",
}

// licence is what one licence file says, as a DEP-5 License field.
type licence struct {
	expr string // short names joined by " and "
	// text is the licence text to quote, "" when every licence in it is a
	// common one (referred to by a standalone paragraph instead). The parts
	// that are common licences are replaced by a reference.
	text    string
	commons []string // the common licences it refers to
}

// classify recognises the licences in text. Matches too small to be a
// licence text (a URL, a one-line reference) do not count.
func classify(what, text string) (licence, error) {
	if strings.TrimSpace(text) == "" {
		return licence{}, fmt.Errorf("%s has no LICENSE or COPYING file", what)
	}
	cov := licensecheck.Scan([]byte(text))
	var l licence
	names := map[string]bool{}
	var b strings.Builder
	at := 0
	quote := false
	for _, m := range cov.Match {
		if m.IsURL {
			continue
		}
		name, isCommon := common[m.ID]
		if !isCommon {
			name = m.ID
			if n, ok := dep5Name[m.ID]; ok {
				name = n
			}
			quote = true
		}
		if !names[name] {
			names[name] = true
			if isCommon {
				l.commons = append(l.commons, name)
			}
		}
		if isCommon {
			b.WriteString(text[at:m.Start])
			fmt.Fprintf(&b, "[%s: see /usr/share/common-licenses/%s]", commonTitle[name], name)
			at = m.End
		}
	}
	b.WriteString(text[at:])
	if len(names) == 0 || cov.Percent < 50 {
		return licence{}, fmt.Errorf("%s: cannot recognise its licence (licensecheck matched %.0f%% of the text: %v); check it by hand", what, cov.Percent, cov.Match)
	}
	var ns []string
	for n := range names {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	l.expr = strings.Join(ns, " and ")
	if quote {
		l.text = strings.TrimSpace(b.String())
	}
	sort.Strings(l.commons)
	return l, nil
}

var (
	// "Copyright (c) 2013 Ben Johnson", "Copyright 2009 The Go Authors.",
	// "Copyright (C) Someone", "(c) 2014 Someone", "© 2020 X": the
	// holder follows.
	copyrightLine  = regexp.MustCompile(`(?i)^\s*(?:copyright\s*(\(c\)|©)?|(\(c\)|©))[\s:]*(.*\S)\s*$`)
	startsYear     = regexp.MustCompile(`^(?:19|20)[0-9]{2}`)
	rightsReserved = regexp.MustCompile(`(?i)[.,]?\s*all rights reserved\.?$`)
)

// copyrights finds the copyright notices in text: "Copyright" followed by
// a year or by a (c) or © sign, or such a sign followed by a year. Apache's
// "Copyright [yyyy] [name of copyright owner]" template, the licences' own
// "copyright notice" wording and list items "(c)" are not notices.
func copyrights(text string) []string {
	var out []string
	seen := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		m := copyrightLine.FindStringSubmatch(line)
		if m == nil || strings.ContainsAny(m[3], "[{") {
			continue
		}
		sign, lone := m[1] != "", m[2] != ""
		year := startsYear.MatchString(m[3])
		if !(year || sign && !lone) || lone && !year {
			continue
		}
		holder := strings.TrimSpace(rightsReserved.ReplaceAllString(m[3], ""))
		if holder != "" && !seen[holder] {
			seen[holder] = true
			out = append(out, holder)
		}
	}
	return out
}

// moduleCopyrights looks for a module's copyright notices in its licence
// and NOTICE files, else in the header comments of its Go files (tests,
// testdata and vendor left out), one line per holder with the span of years
// the headers give.
func moduleCopyrights(dir, licenceText, notice string) []string {
	if c := copyrights(licenceText + "\n" + notice); len(c) > 0 {
		return c
	}
	var found []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() && (d.Name() == "testdata" || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			found = append(found, headerCopyrights(path)...)
		}
		return nil
	})
	return mergeYears(found)
}

// headerCopyrights returns the notices in the comments before the package
// clause of a Go file.
func headerCopyrights(file string) []string {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	head, _, _ := strings.Cut(string(b), "\npackage ")
	return copyrights(strings.ReplaceAll(head, "//", ""))
}

var (
	yearsThenHolder = regexp.MustCompile(`^([0-9][0-9 ,\-–]*[0-9])[\s,]+(.*\S)$`)
	year            = regexp.MustCompile(`(?:19|20)[0-9]{2}`)
)

// mergeYears folds notices of one holder into one: "2014 NTT." and "2016
// NTT" give "2014-2016 NTT". Holders keep their first spelling and come out
// sorted; notices without years are kept as they are.
func mergeYears(notices []string) []string {
	type span struct {
		holder   string
		min, max string
	}
	spans := map[string]*span{}
	var other []string
	seen := map[string]bool{}
	for _, n := range notices {
		m := yearsThenHolder.FindStringSubmatch(n)
		if m == nil {
			if !seen[n] {
				seen[n] = true
				other = append(other, n)
			}
			continue
		}
		key := strings.ToLower(strings.TrimRight(m[2], ". "))
		sp := spans[key]
		if sp == nil {
			sp = &span{holder: m[2]}
			spans[key] = sp
		}
		for _, y := range year.FindAllString(m[1], -1) {
			if sp.min == "" || y < sp.min {
				sp.min = y
			}
			if y > sp.max {
				sp.max = y
			}
		}
	}
	var out []string
	for _, sp := range spans {
		years := sp.min
		if sp.max != sp.min {
			years += "-" + sp.max
		}
		out = append(out, years+" "+sp.holder)
	}
	sort.Slice(out, func(i, j int) bool { return strings.SplitN(out[i], " ", 2)[1] < strings.SplitN(out[j], " ", 2)[1] })
	return append(out, other...)
}

// paragraph is one Files paragraph: modules with the same licence text and
// copyright notices.
type paragraph struct {
	files     []string
	copyright []string
	lic       licence
	comment   []string
}

func write(w io.Writer, p project, std module, mods []module) error {
	var paras []*paragraph
	commons := map[string]bool{}
	byKey := map[string]*paragraph{}
	add := func(files string, copyright []string, lic licence, comment ...string) {
		for _, c := range lic.commons {
			commons[c] = true
		}
		key := lic.expr + "\x00" + lic.text + "\x00" + strings.Join(copyright, "\n")
		if par := byKey[key]; par != nil {
			par.files = append(par.files, files)
			par.comment = append(par.comment, comment...)
			return
		}
		par := &paragraph{files: []string{files}, copyright: copyright, lic: lic, comment: comment}
		byKey[key] = par
		paras = append(paras, par)
	}

	// The project itself.
	self := licence{
		expr: "not-yet-chosen",
		text: "The " + p.name + " repository does not state a licence for its own code\n" +
			"(there is no LICENSE file at its top). Ask the upstream contact.",
	}
	if p.licenseText != "" {
		l, err := classify(p.name+"'s LICENSE", p.licenseText)
		if err != nil {
			return err
		}
		self = l
	}
	selfCopyright := p.copyright
	if selfCopyright == "" {
		selfCopyright = "the " + p.name + " authors"
	}
	for _, c := range self.commons {
		commons[c] = true
	}

	// The Go standard library and runtime.
	stdText, err := licenseFiles(std.dir)
	if err != nil {
		return fmt.Errorf("the Go standard library (GOROOT %s): %v", std.dir, err)
	}
	stdLic, err := classify("the Go standard library", stdText)
	if err != nil {
		return err
	}
	add("GOROOT/src/*", copyrights(stdText), stdLic,
		fmt.Sprintf("The Go standard library and runtime (%s), linked into\nevery Go program.", std.version))

	for _, m := range mods {
		text, err := licenseFiles(m.dir)
		if err != nil {
			return err
		}
		what := "Go module " + m.path + "@" + m.version
		lic, err := classify(what, text)
		if err != nil {
			return err
		}
		notice, err := topFiles(m.dir, noticeName)
		if err != nil {
			return err
		}
		cr := moduleCopyrights(m.dir, text, notice)
		if len(cr) == 0 {
			cr = []string{"the authors of " + m.path + " (the module states no copyright notice)"}
		}
		comment := []string{fmt.Sprintf("Go module %s %s", m.path, m.version)}
		if m.sum != "" {
			comment[0] += " (" + m.sum + ")"
		}
		comment[0] += "."
		if notice != "" {
			comment = append(comment, "Its NOTICE file:", notice)
		}
		add(m.path+"/*", cr, lic, comment...)
	}

	var b strings.Builder
	b.WriteString("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n")
	field(&b, "Upstream-Name", p.name)
	if p.contact != "" {
		field(&b, "Upstream-Contact", p.contact)
	}
	if p.source != "" {
		field(&b, "Source", p.source)
	}
	field(&b, "Comment", wrap("Generated by the packaging script (debcopyright) from the build information of /usr/bin/"+p.binary+
		": the Go modules it was linked from, as go.mod and go.sum name them. A Files pattern GOROOT/src/* means the Go"+
		" distribution's source; a pattern <module path>/* means that Go module's source (what `go mod vendor` puts"+
		" under vendor/<module path>).", 72))
	b.WriteString("\n")
	field(&b, "Files", "*")
	field(&b, "Copyright", selfCopyright)
	licenceField(&b, self)
	for _, par := range paras {
		b.WriteString("\n")
		field(&b, "Files", strings.Join(par.files, "\n"))
		field(&b, "Copyright", strings.Join(par.copyright, "\n"))
		licenceField(&b, par.lic)
		field(&b, "Comment", strings.Join(par.comment, "\n"))
	}
	var names []string
	for c := range commons {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		b.WriteString("\n")
		field(&b, "License", c+"\n"+fmt.Sprintf("On Debian systems, the complete text of %s can be found in /usr/share/common-licenses/%s.", commonTitle[c], c))
	}
	_, err = io.WriteString(w, b.String())
	return err
}

func licenceField(b *strings.Builder, l licence) {
	v := l.expr
	if l.text != "" {
		v += "\n" + l.text
	}
	field(b, "License", v)
}

// field writes a DEP-5 field: the first line after the name, every further
// line indented by a space, an empty line as " .", tabs as spaces.
func field(b *strings.Builder, name, value string) {
	lines := strings.Split(strings.ReplaceAll(value, "\r\n", "\n"), "\n")
	b.WriteString(name + ":")
	if first := strings.TrimSpace(lines[0]); first != "" {
		b.WriteString(" " + first)
	}
	b.WriteString("\n")
	for _, l := range lines[1:] {
		l = strings.TrimRight(strings.ReplaceAll(l, "\t", "    "), " ")
		if strings.TrimSpace(l) == "" {
			l = "."
		}
		b.WriteString(" " + l + "\n")
	}
}

// wrap breaks s into lines of at most width characters at spaces.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		if i > 0 && n+1+len(w) > width {
			b.WriteString("\n")
			n = 0
		} else if i > 0 {
			b.WriteString(" ")
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}
