package clock_test

import (
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
		timePkg := ""
		for _, im := range f.Imports {
			if p, _ := strconv.Unquote(im.Path.Value); p == "time" {
				timePkg = "time"
				if im.Name != nil {
					timePkg = im.Name.Name
				}
			}
		}
		if timePkg == "" {
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
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == timePkg {
				switch sel.Sel.Name {
				case "Now", "Since", "Until":
					pos := fset.Position(sel.Pos())
					if !allowed[pos.Line] {
						bad = append(bad, filepath.ToSlash(rel)+":"+strconv.Itoa(pos.Line)+": time."+sel.Sel.Name)
					}
				}
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
