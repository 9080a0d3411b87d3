package server

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoSecretKeyInServer checks by construction that the server half never
// names a secret-key type, a key generator or a decryptor, and does not
// import the client half, in any of its non-test files or in the packages
// it shares with the client (he). The server's derivation of rotation keys
// from master keys (he.DeriveGaloisKeys, he.UnmarshalEvalKeys) is among
// the code checked: it needs no secret.
func TestNoSecretKeyInServer(t *testing.T) {
	banned := []string{"SecretKey", "NewKeyGenerator", "KeyGenerator", "NewDecryptor", "Decryptor"}
	mustCheck := map[string]bool{"DeriveGaloisKeys": false, "UnmarshalEvalKeys": false, "Evaluate": false}
	for _, dir := range []string{".", ".."} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			fs := token.NewFileSet()
			file, err := parser.ParseFile(fs, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range file.Imports {
				if strings.Contains(imp.Path.Value, "he/client") {
					t.Errorf("%s imports the client half", f)
				}
			}
			for _, d := range file.Decls {
				if fd, ok := d.(*ast.FuncDecl); ok {
					if _, ok := mustCheck[fd.Name.Name]; ok {
						mustCheck[fd.Name.Name] = true
					}
				}
			}
			ast.Inspect(file, func(n ast.Node) bool {
				if id, ok := n.(*ast.Ident); ok {
					for _, b := range banned {
						if id.Name == b {
							t.Errorf("%s: %s names %s", f, fs.Position(id.Pos()), b)
						}
					}
				}
				return true
			})
		}
	}
	for name, seen := range mustCheck {
		if !seen {
			t.Errorf("%s is not defined in the files checked: the test no longer covers it", name)
		}
	}
}
