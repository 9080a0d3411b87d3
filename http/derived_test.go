package http_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/sdk"
)

// TestDerivedKeysOnce: a model deployed with --keys derived, two users'
// key sets, and an evaluator cache that holds one evaluator, so that the
// users' jobs, alternating, load their keys from the blob store on every
// job. Each key set is derived once, when it is uploaded; the loads read
// the derived keys stored then, and the predictions match the plaintext
// model's outputs within the plan's stated error.
func TestDerivedKeysOnce(t *testing.T) {
	ctx := context.Background()
	url, _, a := MustServerIn(t, t.TempDir(), func(c *app.Config) {
		c.EvaluatorCacheBytes = 1 // the newest evaluator only
	})
	login := signup(t, url, a)
	owner := login("olivia", fheserve.RoleOwner)
	onnx, err := os.ReadFile(filepath.Join("..", "testdata", "onnx", "mlp_square.onnx"))
	check(t, err)
	// At 30 bits of privacy this model's derived plan falls short (30.0
	// bits at best); the caching does not depend on it.
	m, err := owner.Deploy(ctx, &fheserve.DeployRequest{Name: "mlp_square", ONNX: onnx, CompileSettings: fheserve.CompileSettings{Keys: fheserve.KeysDerived, PrivacyBits: 20, NoTiles: true}})
	check(t, err)
	x, err := npy.ReadFile(filepath.Join("..", "testdata", "onnx", "mlp_square.x.npy"))
	check(t, err)
	y, err := npy.ReadFile(filepath.Join("..", "testdata", "onnx", "mlp_square.y.npy"))
	check(t, err)
	var users []*userKeys
	for _, name := range []string{"ulrich", "ursula"} {
		c := login(name, fheserve.RoleUser)
		users = append(users, &userKeys{c: c, k: keysOf(t, c, m.ID)})
	}
	if users[0].k.Plan.Keys != fheserve.KeysDerived {
		t.Fatalf("plan keys %q, want %q", users[0].k.Plan.Keys, fheserve.KeysDerived)
	}
	if n := a.KeyDerivations(); n != 2 {
		t.Fatalf("%d derivations after 2 uploads, want 2", n)
	}
	in, out := users[0].k.Plan.InputSize(), users[0].k.Plan.OutputSize()
	stated := users[0].k.Plan.Precision.OutputError
	for round := range 2 {
		for i, u := range users {
			s := (2*round + i) % (len(x.Data) / in)
			got, err := u.c.Predict(ctx, u.k, x.Data[s*in:(s+1)*in], 1, nil)
			check(t, err)
			for j, v := range got {
				if d := math.Abs(v - y.Data[s*out+j]); d > stated {
					t.Errorf("sample %d, output %d: %.4g, plaintext %.4g (error %.3g, stated %.3g)", s, j, v, y.Data[s*out+j], d, stated)
				}
			}
		}
	}
	hits, misses := a.KeyCacheStats()
	t.Logf("4 jobs: %d key cache hits, %d misses, %d derivations", hits, misses, a.KeyDerivations())
	if misses < 2 {
		t.Errorf("%d key cache misses, want at least 2 (one evaluator cached, two key sets alternating)", misses)
	}
	if n := a.KeyDerivations(); n != 2 {
		t.Errorf("%d derivations after %d loads of 2 key sets, want 2 (once per key set)", n, misses)
	}
}

type userKeys struct {
	c *sdk.Client
	k *sdk.Keys
}
