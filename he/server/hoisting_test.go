package server_test

import (
	"fmt"
	"testing"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// BenchmarkHoisting measures what the compiler's hoistedCost weighs: a
// full rotation (decomposition, key switch, ModDown), the decomposition
// alone, a hoisted rotation kept in QP (a baby step), and a plaintext
// product of both halves in QP, at N = 2^14 and 2^15 with one
// key-switching prime, at a low, a middle and the top level.
func BenchmarkHoisting(b *testing.B) {
	for _, logN := range []int{14, 15} {
		logQ := []int{60, 50, 50, 50, 50, 50}
		if logN == 15 {
			logQ = []int{60, 50, 50, 50, 50, 50, 50, 50, 50, 50}
		}
		params, err := ckks.NewParametersFromLiteral(ckks.ParametersLiteral{LogN: logN, LogQ: logQ, LogP: []int{61}, LogDefaultScale: 50})
		if err != nil {
			b.Fatal(err)
		}
		kg := rlwe.NewKeyGenerator(params)
		sk := kg.GenSecretKeyNew()
		galEl := params.GaloisElement(5)
		eval := ckks.NewEvaluator(params, rlwe.NewMemEvaluationKeySet(nil, kg.GenGaloisKeyNew(galEl, sk)))
		enc := rlwe.NewEncryptor(params, sk)
		for _, level := range []int{1, 3, params.MaxLevel()} {
			ct := ckks.NewCiphertext(params, 1, level)
			if err := enc.Encrypt(ckks.NewPlaintext(params, level), ct); err != nil {
				b.Fatal(err)
			}
			levelP := params.MaxLevelP()
			decomp := rlwe.NewPool(params.RingQP()).AtLevel(level, levelP).GetBuffDecompQP(*params.GetRLWEParameters(), level, levelP)
			rot := ckks.NewCiphertext(params, 1, level)
			baby := rlwe.NewElementExtended(params, 1, level, levelP)
			ringQP := params.RingQP().AtLevel(level, levelP)
			acc := ringQP.NewPoly()
			ops := []struct {
				name string
				f    func() error
			}{
				{"rotate", func() error { return eval.Rotate(ct, 5, rot) }},
				{"decompose", func() error { eval.DecomposeNTT(level, levelP, levelP+1, ct.Value[1], ct.IsNTT, decomp); return nil }},
				{"hoisted-lazy", func() error { return eval.AutomorphismHoistedLazy(level, ct, decomp, galEl, baby) }},
				{"plaintext-product-qp", func() error {
					ringQP.MulCoeffsMontgomeryLazyThenAddLazy(baby.Value[0], baby.Value[1], acc)
					ringQP.MulCoeffsMontgomeryLazyThenAddLazy(baby.Value[0], baby.Value[1], acc)
					return nil
				}},
			}
			for _, op := range ops {
				b.Run(fmt.Sprintf("N=2^%d/level=%d/%s", logN, level, op.name), func(b *testing.B) {
					for b.Loop() {
						if err := op.f(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
