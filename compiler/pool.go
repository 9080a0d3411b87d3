package compiler

import "github.com/fheserve/fheserve/plan"

// poolSums turns each average pooling that fusion would not absorb into
// the linear map before it (its input is not a linear step) and that only
// linear steps read into a Sum step: the sum of its windows, computed by
// rotations in slots and additions in batch packing, with no level and
// no plaintext product. Its readers absorb the division by the window's
// cell count. Fused into the convolution after it instead, a 2x2 pooling
// makes a 3x3 convolution one of 6x6 taps at stride 2, with up to four
// times the diagonals; which of the two costs less depends on the layout,
// so the compiler builds both (compileProgram) and reports the number of
// poolings it turned into sums.
func poolSums(nodes []*irNode, out int) int {
	countUsers(nodes, out)
	readers := make([][]*irNode, len(nodes)+1)
	for _, n := range nodes {
		if n.dead {
			continue
		}
		for _, in := range n.step.In {
			readers[in] = append(readers[in], n)
		}
	}
	sums := 0
	for i, n := range nodes {
		s := &n.step
		if !n.pool || n.dead || i+1 == out || len(readers[i+1]) == 0 {
			continue
		}
		if in := s.In[0]; in > 0 && nodes[in-1].step.Kind == plan.StepLinear {
			continue
		}
		w, ok := uniform(s.M)
		if !ok {
			continue
		}
		linear := true
		for _, r := range readers[i+1] {
			linear = linear && r.step.Kind == plan.StepLinear
		}
		if !linear {
			continue
		}
		s.Kind, s.M, s.Grid = plan.StepSum, scaled(s.M, 1/w), nil
		for _, r := range readers[i+1] {
			r.step.M = scaled(r.step.M, w)
		}
		sums++
	}
	return sums
}

// uniform returns the value every entry of m has (false when they differ
// or m is empty).
func uniform(m *plan.Sparse) (float64, bool) {
	if m.NNZ() == 0 {
		return 0, false
	}
	for _, v := range m.Val {
		if v != m.Val[0] {
			return 0, false
		}
	}
	return m.Val[0], true
}

// scaled returns a copy of m with every entry multiplied by f.
func scaled(m *plan.Sparse, f float64) *plan.Sparse {
	c := *m
	c.Val = make([]float64, len(m.Val))
	for i, v := range m.Val {
		c.Val[i] = v * f
	}
	return &c
}
