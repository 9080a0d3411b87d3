package fheserve_test

import (
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
)

func TestValidLabels(t *testing.T) {
	for _, tc := range []struct {
		name    string
		labels  []string
		outputs int
		ok      bool
	}{
		{"fashion", []string{"T-shirt/top", "Trouser", "Ankle boot"}, 3, true},
		{"unicode", []string{"chat", "chien ü", "猫"}, 3, true},
		{"count", []string{"a", "b"}, 3, false},
		{"empty", []string{"a", ""}, 2, false},
		{"twice", []string{"a", "a"}, 2, false},
		{"longest", []string{strings.Repeat("x", fheserve.MaxLabelLen)}, 1, true},
		{"too long", []string{strings.Repeat("x", fheserve.MaxLabelLen+1)}, 1, false},
		{"leading space", []string{" a"}, 1, false},
		{"newline", []string{"a\nb"}, 1, false},
		{"control", []string{"a\x00"}, 1, false},
		{"bad utf-8", []string{"a\xff"}, 1, false},
		{"too many", make([]string, fheserve.MaxLabels+1), fheserve.MaxLabels + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := fheserve.ValidLabels(tc.labels, tc.outputs)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidLabels = %v, want ok %v", err, tc.ok)
			}
			if err != nil && fheserve.ErrorCode(err) != fheserve.EINVALID {
				t.Errorf("code %q, want EINVALID", fheserve.ErrorCode(err))
			}
		})
	}
}
