package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fheserve/fheserve/npy"
)

// demoPhoto is one of face-api's demo photos, which face/testdata holds
// with the descriptors face-api computed on them (golden.json).
func demoPhoto(name string) string {
	return filepath.Join("..", "..", "face", "testdata", name+".jpg")
}

// faceAPIDescriptors returns what face-api computed for the faces of the
// demo photo name, left to right.
func faceAPIDescriptors(t *testing.T, name string) [][]float64 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "face", "testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Images []struct {
			Image string
			Faces []struct{ Descriptor []float64 }
		}
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	for _, im := range g.Images {
		if im.Image == name {
			var out [][]float64
			for _, f := range im.Faces {
				out = append(out, f.Descriptor)
			}
			return out
		}
	}
	t.Fatalf("no %s in golden.json", name)
	return nil
}

func TestFaceEmbed(t *testing.T) {
	out := filepath.Join(t.TempDir(), "e.npy")
	r := runCLI(t, "face", "embed", demoPhoto("sample2"), "-o", out)
	mustSucceed(t, r)
	if !strings.Contains(r.stderr, "face 1 of 1") {
		t.Errorf("stderr does not list the face: %q", r.stderr)
	}
	a, err := npy.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Shape) != 2 || a.Shape[0] != 1 || a.Shape[1] != 128 {
		t.Fatalf("shape %v, want [1 128]", a.Shape)
	}
	// face-api's descriptor scaled to unit length, to float32 rounding.
	want := faceAPIDescriptors(t, "sample2")[0]
	var norm float64
	for _, v := range want {
		norm += v * v
	}
	norm = math.Sqrt(norm)
	var worst, got float64
	for i, v := range a.Data {
		worst = max(worst, math.Abs(v-want[i]/norm))
		got += v * v
	}
	if worst > 1e-5 || math.Abs(got-1) > 1e-5 {
		t.Errorf("embedding differs from face-api's by %.3g, squared norm %.7f", worst, got)
	}
	// --image in verify and identify gets the same probe.
	probe, err := imageEmbedding(demoPhoto("sample2"))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range probe.Data {
		if float64(float32(v)) != a.Data[i] {
			t.Fatalf("imageEmbedding value %d is %v, face embed wrote %v", i, v, a.Data[i])
		}
	}
}

func TestFaceEmbedRefuses(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no photo", []string{"-o", "e.npy"}, "no photo given"},
		{"no output", []string{demoPhoto("sample2")}, "--output"},
		{"missing photo", []string{"nowhere.jpg", "-o", "e.npy"}, `photo "nowhere.jpg" not found`},
		{"not a photo", []string{filepath.Join("..", "..", "face", "testdata", "golden.json"), "-o", "e.npy"}, "JPEG or PNG"},
		{"several faces", []string{demoPhoto("sample1"), "-o", "e.npy"}, "3 faces found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, append([]string{"face", "embed"}, tt.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", r.code, r.stderr, tt.want)
			}
		})
	}
}
