package fuzzcorpus

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seed")
	if err := os.WriteFile(path, []byte("go test fuzz v1\nbyte('9')\nstring(\"a\\nb\")\n[]byte(\"\\xe0\\x00\")\nbyte(0x07)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{byte('9'), "a\nb", []byte{0xe0, 0}, byte(7)}
	if len(e.Values) != len(want) {
		t.Fatalf("got %d values, want %d", len(e.Values), len(want))
	}
	for i, v := range e.Values {
		if b, ok := v.([]byte); ok {
			if string(b) != string(want[i].([]byte)) {
				t.Errorf("value %d: %q", i, b)
			}
			continue
		}
		if v != want[i] {
			t.Errorf("value %d: %#v, want %#v", i, v, want[i])
		}
	}
	for _, bad := range []string{"go test fuzz v2\n[]byte(\"\")\n", "go test fuzz v1\n", "go test fuzz v1\nfloat64(1)\n", "go test fuzz v1\n[]byte(\"\\q\")\n"} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFile(path); err == nil {
			t.Errorf("ReadFile accepted %q", bad)
		}
	}
}
