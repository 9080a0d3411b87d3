package client

import (
	"errors"
	"io"
	"runtime"
	"sync"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// Seal runs on a model owner's machine: it encrypts every weight of prog
// (latency diagonals, pre-rotated for the baby-step giant-step product,
// coefficient weight polynomials, and biases) under a user's public key,
// at the level and scale the server evaluates them (he.SealedLayout), and
// writes them in the validated wire format (he.MarshalSealed). The server
// then holds the plan, he.StripWeights(prog) and these ciphertexts, and
// never a weight. Each ciphertext is a public-key encryption, which has
// no seed: the output is plan.Sizes.SealedWeights bytes, both polynomials
// of every ciphertext.
func Seal(w io.Writer, params ckks.Parameters, p *plan.Plan, prog *plan.Program, pk *rlwe.PublicKey) error {
	cts, err := SealCiphertexts(params, p, prog, pk)
	if err != nil {
		return err
	}
	return he.MarshalSealed(w, params, cts)
}

// SealCiphertexts is Seal without the encoding.
func SealCiphertexts(params ckks.Parameters, p *plan.Plan, prog *plan.Program, pk *rlwe.PublicKey) ([]*rlwe.Ciphertext, error) {
	if pk == nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "no public key to seal for")
	}
	return sealEach(params, p, prog, func() func(*rlwe.Plaintext) (*rlwe.Ciphertext, error) {
		return rlwe.NewEncryptor(params, pk).EncryptNew
	})
}

// SealPlaintexts is SealCiphertexts before the encryption: the weights
// encoded (fixed point, in the ring) at the levels and scales of
// he.SealedLayout, as the owner's machine encrypts them. Tests look for
// these encodings where no weight may be.
func SealPlaintexts(params ckks.Parameters, p *plan.Plan, prog *plan.Program) ([]*rlwe.Plaintext, error) {
	return sealEach(params, p, prog, func() func(*rlwe.Plaintext) (*rlwe.Plaintext, error) {
		return func(pt *rlwe.Plaintext) (*rlwe.Plaintext, error) { return pt, nil }
	})
}

// sealEach encodes each item of prog's sealed layout and passes it to a
// function of its worker (newWorker is called once per worker): the items
// are spread over the cores, each worker with its encoder.
func sealEach[T any](params ckks.Parameters, p *plan.Plan, prog *plan.Program, newWorker func() func(*rlwe.Plaintext) (T, error)) ([]T, error) {
	if err := he.CheckParams(params); err != nil {
		return nil, err
	}
	if !p.Sealed {
		return nil, fheserve.Errorf(fheserve.EINVALID, "the plan is not compiled for sealed weights")
	}
	items, err := he.SealedLayout(params, p, prog)
	if err != nil {
		return nil, err
	}
	diags := map[int]map[int][]float64{}
	for _, it := range items {
		if s := &prog.Steps[it.Step]; diags[it.Step] == nil && !s.Coeffs {
			diags[it.Step] = s.Diagonals()
		}
	}
	out := make([]T, len(items))
	workers := min(runtime.GOMAXPROCS(0), len(items))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ecd := ckks.NewEncoder(params, he.EncodingPrecision)
			f := newWorker()
			for k := w; k < len(items) && errs[w] == nil; k += workers {
				var pt *rlwe.Plaintext
				if pt, errs[w] = encodeItem(ecd, params, prog, diags, items[k]); errs[w] == nil {
					out[k], errs[w] = f(pt)
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// encodeItem encodes one item of the sealed layout.
func encodeItem(ecd *ckks.Encoder, params ckks.Parameters, prog *plan.Program, diags map[int]map[int][]float64, it he.SealedItem) (*rlwe.Plaintext, error) {
	s := &prog.Steps[it.Step]
	var v []float64
	switch {
	case it.Bias:
		v = biasVector(s, params.N(), params.MaxSlots())
	case s.Coeffs:
		v = s.WeightPolynomial(params.N())
	default:
		v = diagonalVector(s, diags[it.Step][it.Giant+it.Baby], it.Giant, params.MaxSlots())
	}
	pt := ckks.NewPlaintext(params, it.Level)
	pt.IsBatched = it.Batched
	pt.Scale = it.Scale
	return pt, ecd.Encode(v, pt)
}

// diagonalVector is diagonal d of step s over the slots as the step's
// windows hold it (plan.Step.SlotWindows), rotated by -giant: the
// baby-step giant-step form Lattigo's linear transformations encode.
func diagonalVector(s *plan.Step, d []float64, giant, slots int) []float64 {
	window, windows, _ := s.SlotWindows(slots, 1)
	v := make([]float64, slots)
	for w := range windows {
		for i, x := range d {
			v[(w*window+i+giant)%slots] = x
		}
	}
	return v
}

// biasVector is the step's bias where its outputs sit (zeros without a
// bias): in each of the step's windows, every bias period
// (plan.Step.SlotWindows), or at the output coefficients.
func biasVector(s *plan.Step, n, slots int) []float64 {
	if s.Coeffs {
		return s.BiasCoefficients(n)
	}
	window, windows, step := s.SlotWindows(slots, 1)
	v := make([]float64, slots)
	for j := 0; j < windows*window && s.Bias != nil; j += step {
		for r, b := range s.Bias {
			v[j+plan.Pos(s.OutPos, r)] = b
		}
	}
	return v
}
