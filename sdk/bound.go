package sdk

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/plan"
)

// OutOfBoundError reports the samples whose decrypted outputs, before the
// plan's head, exceed the output bound the model's parameters were sized
// for (plan.Precision.OutputBound). Such an input was unlike the
// calibration data: it probably drove an activation beyond the interval
// its polynomial was fitted on, where the polynomial explodes, and far
// enough out the value wraps around the modulus and decrypts to garbage.
// Their predictions are unreliable; the other samples' are not affected
// (except in batch packing far past the bound, where the wrap-around
// spoils the whole call).
type OutOfBoundError struct {
	Samples []int   // the samples' indices, from 0
	Total   int     // the samples decrypted
	Bound   float64 // the plan's output bound
	Largest float64 // the largest magnitude among their outputs (+Inf for NaN)
}

func (e *OutOfBoundError) Error() string {
	return fmt.Sprintf("%d of %d sample%s (%s) decrypted beyond the output bound %.4g of the model's parameters (largest value %.4g): "+
		"the input probably left the calibrated interval of an activation, and the prediction is unreliable",
		len(e.Samples), e.Total, plural(e.Total), sampleList(e.Samples), e.Bound, e.Largest)
}

// Unwrap gives the error code: the input is out of the model's range.
func (e *OutOfBoundError) Unwrap() error {
	return &fheserve.Error{Code: fheserve.EINVALID, Message: e.Error()}
}

// outOfBound checks the raw outputs of n samples against p's bound.
func outOfBound(p *plan.Plan, raw []float64, n int) *OutOfBoundError {
	bad := p.OutOfBound(raw)
	if len(bad) == 0 {
		return nil
	}
	e := &OutOfBoundError{Samples: bad, Total: n, Bound: p.Precision.OutputBound}
	size := p.OutputSize()
	for _, s := range bad {
		for _, v := range raw[s*size : (s+1)*size] {
			if math.IsNaN(v) {
				v = math.Inf(1)
			}
			e.Largest = math.Max(e.Largest, math.Abs(v))
		}
	}
	return e
}

// Merge adds the samples of other, the error of a call whose first sample
// is number start, to e, for a prediction split into calls. Total is the
// caller's to set.
func (e *OutOfBoundError) Merge(other *OutOfBoundError, start int) {
	for _, s := range other.Samples {
		e.Samples = append(e.Samples, start+s)
	}
	e.Bound, e.Largest = other.Bound, math.Max(e.Largest, other.Largest)
}

// add merges the out-of-bound samples of err, a call's error, and returns
// any other error.
func (e *OutOfBoundError) add(err error, start int) error {
	var call *OutOfBoundError
	if !errors.As(err, &call) {
		return err
	}
	e.Merge(call, start)
	return nil
}

// sampleList names up to 10 samples.
func sampleList(s []int) string {
	var b strings.Builder
	b.WriteString("sample")
	if len(s) > 1 {
		b.WriteString("s")
	}
	for i, n := range s {
		if i == 10 {
			fmt.Fprintf(&b, " and %d more", len(s)-i)
			break
		}
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %d", n)
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
