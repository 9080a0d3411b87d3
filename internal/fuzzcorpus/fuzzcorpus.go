// Package fuzzcorpus reads the seed corpora that `go test -fuzz` keeps
// under testdata/fuzz/<Target>, so that tests can check what the committed
// seeds reach (a valid seed still decodes after a format change).
package fuzzcorpus

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Entry is one corpus file: its path and its values, in order. Values are
// []byte, string, byte (uint8), or int64 for the other integer types.
type Entry struct {
	Path   string
	Values []any
}

// Read returns the entries of testdata/fuzz/target under dir.
func Read(dir, target string) ([]Entry, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "testdata", "fuzz", target, "*"))
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, p := range paths {
		e, err := ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// ReadFile reads one "go test fuzz v1" file.
func ReadFile(path string) (Entry, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return Entry{}, err
	}
	lines := strings.Split(strings.TrimRight(string(body), "\n"), "\n")
	if len(lines) < 2 || lines[0] != "go test fuzz v1" {
		return Entry{}, fmt.Errorf("%s: not a go test fuzz v1 file", path)
	}
	e := Entry{Path: path}
	for _, l := range lines[1:] {
		v, err := parseValue(l)
		if err != nil {
			return Entry{}, fmt.Errorf("%s: %v", path, err)
		}
		e.Values = append(e.Values, v)
	}
	return e, nil
}

func parseValue(l string) (any, error) {
	typ, arg, ok := strings.Cut(l, "(")
	if !ok || !strings.HasSuffix(arg, ")") {
		return nil, fmt.Errorf("cannot parse %q", l)
	}
	arg = strings.TrimSuffix(arg, ")")
	switch typ {
	case "[]byte", "string":
		s, err := strconv.Unquote(arg)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", typ, err)
		}
		if typ == "string" {
			return s, nil
		}
		return []byte(s), nil
	case "byte", "uint8":
		if r, _, tail, err := strconv.UnquoteChar(strings.Trim(arg, "'"), '\''); err == nil && tail == "" && strings.HasPrefix(arg, "'") {
			return byte(r), nil
		}
		n, err := strconv.ParseUint(arg, 0, 8)
		return byte(n), err
	case "int", "int8", "int16", "int32", "int64", "uint", "uint16", "uint32", "uint64", "rune":
		n, err := strconv.ParseInt(arg, 0, 64)
		return n, err
	}
	return nil, fmt.Errorf("unsupported type %q", typ)
}
