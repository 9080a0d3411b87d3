package he_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// lattigoImporters are the only packages, by directory under the module
// root, whose non-test files may import Lattigo: the README's package map
// says so, and everything else reaches the library through them.
var lattigoImporters = map[string]bool{"he": true, "he/client": true, "he/server": true}

// TestLattigoOnlyInHE parses every non-test Go file of the module and fails
// for each import of Lattigo outside he, he/client and he/server. Test files
// are exempt: a few build raw Lattigo objects on purpose (local's
// confidentiality test multiplies without the mask to show what it hides).
func TestLattigoOnlyInHE(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	allowed := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(rel))
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			if p != "github.com/tuneinsight/lattigo" && !strings.HasPrefix(p, "github.com/tuneinsight/lattigo/") {
				continue
			}
			if lattigoImporters[dir] {
				allowed++
			} else {
				t.Errorf("%s imports %s; only he, he/client and he/server may import Lattigo", filepath.ToSlash(rel), p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if allowed == 0 {
		t.Fatal("found no import of Lattigo in he, he/client or he/server: the walk did not see the module")
	}
}
