package onnx

import (
	"slices"

	"github.com/fheserve/fheserve/nn"
)

// optimize removes nodes the output does not depend on (such as the
// Sigmoid of a SiLU pattern) and folds each Affine into the Conv, Dense or
// Affine before it (or the Conv before a Conv1d's reshape) when that node
// has no other consumer. Folding allocates
// new weights; it stops when the budget is spent.
func optimize(g *nn.Graph, budget *int) {
	prune(g)
	foldAffines(g, budget)
	prune(g)
}

// prune keeps only the nodes the output depends on and renumbers values.
func prune(g *nn.Graph) {
	live := make([]bool, len(g.Nodes)+1)
	live[g.Output] = true
	for i := len(g.Nodes) - 1; i >= 0; i-- {
		if live[i+1] {
			for _, v := range g.Nodes[i].Inputs {
				live[v] = true
			}
		}
	}
	id := make([]int, len(g.Nodes)+1)
	var kept []*nn.Node
	for i, n := range g.Nodes {
		if !live[i+1] {
			continue
		}
		for k, v := range n.Inputs {
			n.Inputs[k] = id[v]
		}
		kept = append(kept, n)
		id[i+1] = len(kept)
	}
	g.Nodes = kept
	g.Output = id[g.Output]
}

// foldAffines makes one pass in topological order. alias redirects the
// value of a folded Affine to the node that absorbed it.
func foldAffines(g *nn.Graph, budget *int) {
	uses := make([]int, len(g.Nodes)+1)
	for _, n := range g.Nodes {
		for _, v := range n.Inputs {
			uses[v]++
		}
	}
	uses[g.Output]++
	alias := make([]int, len(g.Nodes)+1)
	for v := range alias {
		alias[v] = v
	}
	var resolve func(v int) int
	resolve = func(v int) int {
		if alias[v] != v {
			alias[v] = resolve(alias[v])
		}
		return alias[v]
	}
	redirect := func(from, to int) {
		alias[from] = to
		uses[to] += uses[from] - 1
	}
	for i, n := range g.Nodes {
		for k, v := range n.Inputs {
			n.Inputs[k] = resolve(v)
		}
		a, ok := n.Op.(*nn.Affine)
		if !ok {
			continue
		}
		p := n.Inputs[0]
		if conv := convBehind(g, p, uses); conv != nil {
			// A Conv1d's: the Conv absorbs the Affine, and the reshape
			// after it stands for the Affine's value.
			if folded := foldInto(conv, a, budget); folded != nil {
				conv.Op = folded
				redirect(i+1, p)
				continue
			}
		}
		if p > 0 && uses[p] == 1 {
			prev := g.Nodes[p-1]
			if folded := foldInto(prev, a, budget); folded != nil {
				prev.Op = folded
				redirect(i+1, p)
				if b, ok := folded.(*nn.Affine); ok && isIdentity(b) {
					redirect(p, prev.Inputs[0])
				}
				continue
			}
		}
		if isIdentity(a) {
			redirect(i+1, p)
		}
	}
	g.Output = resolve(g.Output)
}

// convBehind returns the Conv whose output value p reshapes, keeping its
// channels (the reshape after a Conv1d), when nothing else reads either.
func convBehind(g *nn.Graph, p int, uses []int) *nn.Node {
	if p <= 0 || uses[p] != 1 {
		return nil
	}
	r := g.Nodes[p-1]
	if _, ok := r.Op.(*nn.Reshape); !ok || len(r.Inputs) != 1 {
		return nil
	}
	q := r.Inputs[0]
	if q <= 0 || uses[q] != 1 {
		return nil
	}
	conv := g.Nodes[q-1]
	if _, ok := conv.Op.(*nn.Conv); !ok || len(r.Shape) == 0 || len(conv.Shape) == 0 || r.Shape[0] != conv.Shape[0] {
		return nil
	}
	return conv
}

func isIdentity(a *nn.Affine) bool {
	return !slices.ContainsFunc(a.Scale, func(x float64) bool { return x != 1 }) &&
		!slices.ContainsFunc(a.Shift, func(x float64) bool { return x != 0 })
}

// foldInto returns the op computing a(prev(x)) in one node, or nil if there
// is none or the budget does not allow it. The weights are copied: they may
// be shared with other nodes.
func foldInto(prev *nn.Node, a *nn.Affine, budget *int) nn.Op {
	if len(prev.Shape) == 0 {
		return nil
	}
	c := prev.Shape[0] // output channels (Conv) or outputs (Dense)
	perChannel := (len(a.Scale) == 1 || len(a.Scale) == c) && (len(a.Shift) == 1 || len(a.Shift) == c)
	spend := func(n int) bool {
		if n > *budget {
			return false
		}
		*budget -= n
		return true
	}
	switch op := prev.Op.(type) {
	case *nn.Dense:
		if !perChannel || !spend(len(op.W)+c) {
			return nil
		}
		w, b := scaleRows(op.W, op.B, c, a)
		return &nn.Dense{In: op.In, Out: op.Out, W: w, B: b}
	case *nn.Conv:
		if !perChannel || !spend(len(op.W)+c) {
			return nil
		}
		w, b := scaleRows(op.W, op.B, c, a)
		return &nn.Conv{
			InC: op.InC, OutC: op.OutC, KH: op.KH, KW: op.KW, StrideH: op.StrideH, StrideW: op.StrideW,
			PadT: op.PadT, PadL: op.PadL, PadB: op.PadB, PadR: op.PadR, W: w, B: b,
		}
	case *nn.Affine:
		n := max(len(op.Scale), len(op.Shift), len(a.Scale), len(a.Shift))
		if !spend(4 * n) {
			return nil
		}
		s1, t1 := expand(op.Scale, n), expand(op.Shift, n)
		s2, t2 := expand(a.Scale, n), expand(a.Shift, n)
		for k := range n {
			s1[k], t1[k] = s1[k]*s2[k], t1[k]*s2[k]+t2[k]
		}
		return &nn.Affine{Scale: s1, Shift: t1}
	}
	return nil
}

// scaleRows applies a per-row affine map to c rows of weights w and their
// biases b (nil for none).
func scaleRows(w, b []float64, c int, a *nn.Affine) ([]float64, []float64) {
	w2, b2 := make([]float64, len(w)), make([]float64, c)
	row := len(w) / c
	for o := range c {
		s, t := a.Scale[min(o, len(a.Scale)-1)], a.Shift[min(o, len(a.Shift)-1)]
		for k := o * row; k < (o+1)*row; k++ {
			w2[k] = w[k] * s
		}
		if len(b) != 0 {
			b2[o] = b[o] * s
		}
		b2[o] += t
	}
	return w2, b2
}

// expand copies an Affine vector (length 1, C or the full size of a CHW or
// [C] tensor) to length n, which is one of those and at least len(v).
func expand(v []float64, n int) []float64 {
	out := make([]float64, n)
	switch {
	case len(v) == n:
		copy(out, v)
	case len(v) == 1:
		for k := range out {
			out[k] = v[0]
		}
	default: // per channel to per element
		per := n / len(v)
		for k := range out {
			out[k] = v[k/per]
		}
	}
	return out
}
