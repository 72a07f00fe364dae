package clock_test

import (
	"cmp"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Outside shared/clock, code and tests read the time through clock.Now (or
// the injected clock that defaults to it), so that a test's fixed date, or
// BWX_TEST_NOW, holds for everything it runs. A line that must read the
// kernel's clock (a socket deadline) says so with "bwx:wallclock" and its
// reason. shared/labnet's code is the test harness: its deadlines wait on
// real processes and leave no time in the product.
func TestOnlyClockReadsTheWallClock(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	skip := map[string]bool{"shared/clock": true, ".git": true}
	harness := "shared/labnet/"
	fset := token.NewFileSet()
	var bad []string
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if skip[filepath.ToSlash(rel)] || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		test := strings.HasSuffix(path, "_test.go")
		if !strings.HasSuffix(path, ".go") || !test && strings.HasPrefix(filepath.ToSlash(rel), harness) {
			return nil
		}
		files++
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		// time.Now and its kin, and timestamppb.Now (the wall clock in a
		// protobuf timestamp).
		timePkg, tsPkg := "", ""
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			name := ""
			if im.Name != nil {
				name = im.Name.Name
			}
			switch p {
			case "time":
				timePkg = cmp.Or(name, "time")
			case "google.golang.org/protobuf/types/known/timestamppb":
				tsPkg = cmp.Or(name, "timestamppb")
			}
		}
		if timePkg == "" && tsPkg == "" {
			return nil
		}
		allowed := map[int]bool{}
		for _, cg := range f.Comments {
			for _, c := range cg.List {
				if strings.Contains(c.Text, "bwx:wallclock") {
					allowed[fset.Position(c.Pos()).Line] = true
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			id, ok := sel.X.(*ast.Ident)
			wall := ok && (id.Name == timePkg && (sel.Sel.Name == "Now" || sel.Sel.Name == "Since" || sel.Sel.Name == "Until") ||
				id.Name == tsPkg && sel.Sel.Name == "Now")
			if pos := fset.Position(sel.Pos()); wall && !allowed[pos.Line] {
				bad = append(bad, filepath.ToSlash(rel)+":"+strconv.Itoa(pos.Line)+": "+id.Name+"."+sel.Sel.Name)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("read only %d Go files under %s: is this the module root?", files, root)
	}
	if len(bad) > 0 {
		t.Errorf("read the wall clock through shared/clock (clock.Now, clock.Since, clock.Until) or an injected clock:\n\t%s", strings.Join(bad, "\n\t"))
	}
}
