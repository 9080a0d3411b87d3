package server

import (
	"slices"

	"github.com/fheserve/fheserve/he"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// KernelRotations are the rotations whose Galois keys NewKernels needs.
var KernelRotations = []int{1, 2, 3, 4, 5, 6, 7, 8}

// KernelGaloisElements returns the Galois elements of KernelRotations
// under params, sorted, for client.GenerateKeys.
func KernelGaloisElements(params he.Parameters) []uint64 {
	els := params.GaloisElements(KernelRotations)
	slices.Sort(els)
	return els
}

// Kernels runs, on prepared operands, the homomorphic operations that an
// evaluation is made of, so that their single-core costs can be measured
// one by one (the benchmarks' cost floor and kernel benchmarks). Its
// ciphertexts are encryptions under the key set's public key.
type Kernels struct {
	params he.Parameters
	eval   *ckks.Evaluator
	ecd    *ckks.Encoder
	enc    *rlwe.Encryptor
	san    *he.Sanitizer
}

// NewKernels prepares the kernels with keys, which must hold a
// relinearization key and the Galois keys of KernelRotations.
func NewKernels(params he.Parameters, keys *he.EvalKeys) (*Kernels, error) {
	san, err := he.NewSanitizer(params, keys.Public)
	if err != nil {
		return nil, err
	}
	return &Kernels{
		params: params,
		eval:   ckks.NewEvaluator(params, keys.EvaluationKeySet()),
		ecd:    ckks.NewEncoder(params, he.EncodingPrecision),
		enc:    rlwe.NewEncryptor(params, keys.Public),
		san:    san,
	}, nil
}

// KernelOps are the operations on one set of operands at one level; each
// may be called any number of times.
type KernelOps struct {
	Rotate          func() error // a rotation by one slot
	RotateHoisted8  func() error // eight hoisted rotations, by 1..8 slots
	MulPlaintextAdd func() error // a plaintext product added into an accumulator
	MulConstAdd     func() error // a constant product added into an accumulator
	MulRelin        func() error // a ciphertext product, relinearized (level > 0 only)
	Rescale         func() error // a rescaling (level > 0 only)
	Add             func() error // a ciphertext sum
}

// At encrypts operands at level and returns the operations on them.
func (k *Kernels) At(level int) (*KernelOps, error) {
	p := k.params
	vals := make([]float64, p.MaxSlots())
	for i := range vals {
		vals[i] = float64(i%7) / 7
	}
	pt := ckks.NewPlaintext(p, level)
	if err := k.ecd.Encode(vals, pt); err != nil {
		return nil, err
	}
	ct, err := k.enc.EncryptNew(pt)
	if err != nil {
		return nil, err
	}
	acc := ckks.NewCiphertext(p, 1, level)
	acc.Scale = ct.Scale.Mul(rlwe.NewScale(p.Q()[level]))
	tmp := ckks.NewCiphertext(p, 1, level)
	ops := &KernelOps{
		Rotate: func() error { return k.eval.Rotate(ct, 1, tmp) },
		RotateHoisted8: func() error {
			_, err := k.eval.RotateHoistedNew(ct, KernelRotations)
			return err
		},
		MulPlaintextAdd: func() error { return k.eval.MulThenAdd(ct, pt, acc) },
		MulConstAdd:     func() error { return k.eval.MulThenAdd(ct, 0.3712, acc) },
		Add:             func() error { return k.eval.Add(ct, ct, tmp) },
	}
	if level > 0 {
		ops.MulRelin = func() error {
			_, err := k.eval.MulRelinNew(ct, ct)
			return err
		}
		ops.Rescale = func() error {
			x := ct.CopyNew()
			x.Scale = x.Scale.Mul(rlwe.NewScale(p.Q()[level]))
			return k.eval.Rescale(x, x)
		}
	}
	return ops, nil
}

// Sanitize returns the sanitization of one level-0 result ciphertext with
// flooding of standard deviation floodStd.
func (k *Kernels) Sanitize(floodStd float64) func() error {
	ct := ckks.NewCiphertext(k.params, 1, 0)
	return func() error { return k.san.Sanitize(ct, floodStd) }
}
