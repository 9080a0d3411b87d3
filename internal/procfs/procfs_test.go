package procfs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBytes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "meminfo")
	if err := os.WriteFile(file, []byte("MemTotal:       24684544 kB\nMemFree:  10 kB\nBad: x kB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		field string
		want  int64
	}{{"MemTotal", 24684544 << 10}, {"MemFree", 10 << 10}, {"Bad", 0}, {"Missing", 0}, {"Mem", 0}} {
		if got := Bytes(file, tt.field); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.field, got, tt.want)
		}
	}
	if got := Bytes(filepath.Join(t.TempDir(), "none"), "MemTotal"); got != 0 {
		t.Errorf("missing file: %d", got)
	}
}
