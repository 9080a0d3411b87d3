package server

import (
	"fmt"
	"testing"

	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// BenchmarkFolds measures what the compiler's hoistedStageBase weighs:
// the sum of 64 blocks of 64 slots (a map from period 4096 to 64, the
// bundled cnn's first dense layer) at N = 2^14 with one key-switching
// prime, by six rotations in turn (width 2) and by hoisted stages of 3
// and 7 rotations (plan.Step.FoldStages), at a low level and the top.
func BenchmarkFolds(b *testing.B) {
	params, err := ckks.NewParametersFromLiteral(ckks.ParametersLiteral{LogN: 14, LogQ: []int{60, 50, 50, 50, 50, 50}, LogP: []int{61}, LogDefaultScale: 50})
	if err != nil {
		b.Fatal(err)
	}
	widths := []int{2, 4, 8}
	need := map[int]bool{}
	for _, w := range widths {
		for _, r := range (&plan.Step{Pin: 4096, Pout: 64, FoldWidth: w}).FoldRotations() {
			need[r] = true
		}
	}
	var rots []int
	for r := range need {
		rots = append(rots, r)
	}
	kg := rlwe.NewKeyGenerator(params)
	sk := kg.GenSecretKeyNew()
	gks := kg.GenGaloisKeysNew(params.GaloisElements(rots), sk)
	e := &Evaluator{m: &Model{params: params}, eval: ckks.NewEvaluator(params, rlwe.NewMemEvaluationKeySet(nil, gks...))}
	enc := rlwe.NewEncryptor(params, sk)
	for _, level := range []int{2, params.MaxLevel()} {
		ct := ckks.NewCiphertext(params, 1, level)
		if err := enc.Encrypt(ckks.NewPlaintext(params, level), ct); err != nil {
			b.Fatal(err)
		}
		for _, w := range widths {
			s := &plan.Step{Pin: 4096, Pout: 64, FoldWidth: w}
			b.Run(fmt.Sprintf("level=%d/width=%d", level, w), func(b *testing.B) {
				for b.Loop() {
					y := ct
					for _, stage := range s.FoldStages() {
						if y, err = e.hoistedSum(y, stage); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}
