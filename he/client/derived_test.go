package client_test

import (
	"bytes"
	"fmt"
	"math"
	"testing"

	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// TestDerivedKeyError measures, with the secret key, the error of every
// row of every derived Galois key (b + a*sigma_g^-1(s) - P*e_k*s over QP)
// and checks it against the model (he.DerivedKeyStd) for the number of
// derivation steps behind the key: the standard deviation over the
// coefficients within 15% above the model and not below half of it. A
// fresh key's error is measured alike, against the Gaussian's 3.2.
// Parameters at N = 2^13 (the model holds for any N; measured alike at
// 2^14 on the digits-mlp plan's ring with one key-switching prime and on
// the bundled cnn's, ratios 0.99 to 1.00): a 46-bit master prime as
// large as the largest prime of QP (its digit adds to the rounding), and
// a 38-bit one below them (a base-two decomposition of the masters).
func TestDerivedKeyError(t *testing.T) {
	for _, ps := range []plan.Params{
		{LogN: 13, LogQ: []int{45, 36, 36}, LogP: []int{46}, LogDefaultScale: 36},
		{LogN: 13, LogQ: []int{45, 40, 40}, LogP: []int{46}, LogDefaultScale: 40},
	} {
		t.Run(fmt.Sprintf("logQ=%v", ps.LogQ), func(t *testing.T) { testDerivedKeyError(t, ps) })
	}
}

func testDerivedKeyError(t *testing.T, ps plan.Params) {
	params, err := he.NewParameters(ps)
	if err != nil {
		t.Fatal(err)
	}
	// Rotations of 1 to 9 steps in base 2, up to 34 in base 16.
	rots := []int{1, 7, 5000, -16}
	spec := he.KeySpec{Derived: true}
	for i, r := range rots {
		spec.Galois = append(spec.Galois, params.GaloisElement(r))
		spec.GaloisLevels = append(spec.GaloisLevels, []int{params.MaxLevel(), 2}[i%2])
	}
	keys, evk, err := client.GenerateKeys(params, spec)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := he.MarshalEvalKeys(&buf, params, evk); err != nil {
		t.Fatal(err)
	}
	got, err := he.UnmarshalEvalKeys(&buf, params, he.KeyLimits{Keys: &spec})
	if err != nil {
		t.Fatal(err)
	}
	d, err := he.PlanDerivation(params, spec)
	if err != nil {
		t.Fatal(err)
	}
	sk := keys.Secret()
	for _, gk := range got.Galois {
		hops := d.Steps(gk.GaloisElement)
		measured := keyErrorStd(t, params, sk, gk)
		model := he.DerivedKeyStd(params, hops)
		t.Logf("galois element %5d at level %d, %2d steps: error std %.1f, model %.1f (ratio %.2f)", gk.GaloisElement, gk.LevelQ(), hops, measured, model, measured/model)
		if measured > 1.15*model || measured < model/2 {
			t.Errorf("galois element %d, %d steps: error std %.1f, model %.1f", gk.GaloisElement, hops, measured, model)
		}
	}
	fresh := rlwe.NewKeyGenerator(params).GenGaloisKeyNew(params.GaloisElement(3), sk)
	if e := keyErrorStd(t, params, sk, fresh); math.Abs(e-3.2) > 0.3 {
		t.Errorf("fresh key: error std %.2f, want 3.2", e)
	}
}

// keyErrorStd returns the standard deviation of the coefficients of the
// errors of gk's rows, b + a*sigma_g^-1(s) - P*e_k*s (Lattigo's Galois
// key, in NTT and Montgomery form), computed modulo q_0 and checked to be
// the same small polynomial modulo P's first prime.
func keyErrorStd(t *testing.T, params ckks.Parameters, sk *rlwe.SecretKey, gk *rlwe.GaloisKey) float64 {
	t.Helper()
	l := gk.LevelQ()
	ringQ, ringP := params.RingQ().AtLevel(l), params.RingP()
	idx, err := ring.AutomorphismNTTIndex(params.N(), ringQ.NthRoot(), params.ModInvGaloisElement(gk.GaloisElement))
	if err != nil {
		t.Fatal(err)
	}
	skOutQ, skOutP := ringQ.NewPoly(), ringP.NewPoly()
	ringQ.AutomorphismNTTWithIndex(sk.Value.Q, idx, skOutQ)
	ringP.AutomorphismNTTWithIndex(sk.Value.P, idx, skOutP)
	pc := params.PCount()
	var sum float64
	var count int
	for k, row := range gk.Value {
		// The error modulo q_0 (gadget P mod q_0 in the first row) and
		// modulo p_0 (the gadget is 0 there).
		res := func(sr *ring.SubRing, b, a, sIn, sOut []uint64, gadget uint64) []int64 {
			e := make([]uint64, len(b))
			sr.MulCoeffsMontgomery(a, sOut, e)
			sr.Add(e, b, e)
			if gadget != 0 {
				g := make([]uint64, len(b))
				sr.MulScalarMontgomery(sIn, ring.MForm(gadget, sr.Modulus, sr.BRedConstant), g)
				sr.Sub(e, g, e)
			}
			sr.IMForm(e, e)
			sr.INTT(e, e)
			out := make([]int64, len(e))
			for i, v := range e {
				out[i] = int64(v)
				if v > sr.Modulus/2 {
					out[i] = -int64(sr.Modulus - v)
				}
			}
			return out
		}
		var gadget uint64
		if k == 0 && pc > 0 {
			q0 := params.Q()[0]
			gadget = 1
			for _, p := range params.P() {
				gadget = ring.BRed(gadget, p%q0, q0, ring.GenBRedConstant(q0))
			}
		}
		v := row[0]
		eq := res(ringQ.SubRings[0], v[0].Q.Coeffs[0], v[1].Q.Coeffs[0], sk.Value.Q.Coeffs[0], skOutQ.Coeffs[0], gadget)
		ep := res(ringP.SubRings[0], v[0].P.Coeffs[0], v[1].P.Coeffs[0], sk.Value.P.Coeffs[0], skOutP.Coeffs[0], 0)
		for i := range eq {
			if eq[i] != ep[i] || eq[i] > 1<<40 || eq[i] < -1<<40 {
				t.Fatalf("galois element %d, row %d, coefficient %d: error %d modulo q0, %d modulo p0: not a small error", gk.GaloisElement, k, i, eq[i], ep[i])
			}
			sum += float64(eq[i]) * float64(eq[i])
		}
		count += len(eq)
	}
	return math.Sqrt(sum / float64(count))
}
