package nn

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/fheserve/fheserve"
)

func invalidf(format string, args ...any) error {
	return fheserve.Errorf(fheserve.EINVALID, format, args...)
}

// prefixErr prefixes err's message and keeps its code.
func prefixErr(err error, format string, args ...any) error {
	return fheserve.Errorf(fheserve.ErrorCode(err), "%s: %s", fmt.Sprintf(format, args...), fheserve.ErrorMessage(err))
}

// Validate checks that every value id is defined before it is used, that
// each node's recorded shape is the shape its op computes from its inputs,
// and that weight and vector lengths match the op dimensions.
func (g *Graph) Validate() error {
	if g == nil {
		return invalidf("nil graph")
	}
	if err := CheckShape(g.Input); err != nil {
		return prefixErr(err, "graph input")
	}
	for i, n := range g.Nodes {
		if n == nil {
			return invalidf("node %d is missing", i)
		}
		ins := make([]Shape, len(n.Inputs))
		for k, v := range n.Inputs {
			if v < 0 || v > i {
				return invalidf("%s: input %d is value %d, which is not defined before the node", n.label(i), k, v)
			}
			ins[k] = g.ValueShape(v)
		}
		s, err := InferShape(n.Op, ins)
		if err != nil {
			return prefixErr(err, "%s", n.label(i))
		}
		if !s.Equal(n.Shape) {
			return invalidf("%s: recorded shape %v, but its inputs give %v", n.label(i), n.Shape, s)
		}
	}
	if g.Output < 0 || g.Output > len(g.Nodes) {
		return invalidf("graph output is value %d, which does not exist", g.Output)
	}
	return nil
}

func (n *Node) label(i int) string {
	return fmt.Sprintf("node %d %q (%s)", i, n.Name, n.OpType)
}

// EvalOptions changes how a graph is evaluated.
type EvalOptions struct {
	// Activation, if set, may replace the function of the Activation at
	// g.Nodes[node], for example by the polynomial approximation that will
	// run under encryption. Returning nil keeps the exact function.
	Activation func(node int, a *Activation) func(float64) float64
	// Trace, if set, is called after each node with its inputs and output.
	// The tensors must not be modified. EvalBatch calls it concurrently.
	Trace func(node int, in []*Tensor, out *Tensor)
}

// Eval evaluates the graph on one sample. x has shape g.Input or another
// shape of the same size, such as the flattened input. opt may be nil.
func (g *Graph) Eval(x *Tensor, opt *EvalOptions) (*Tensor, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	if x == nil {
		return nil, invalidf("missing input tensor")
	}
	if len(x.Shape) != 0 && x.Shape.Size() != g.Input.Size() {
		return nil, invalidf("input shape %v does not match the model input %v", x.Shape, g.Input)
	}
	return g.eval(x.Data, opt)
}

// eval evaluates a validated graph.
func (g *Graph) eval(x []float64, opt *EvalOptions) (*Tensor, error) {
	if len(x) != g.Input.Size() {
		return nil, invalidf("input has %d values, the model expects shape %v (%d values)", len(x), g.Input, g.Input.Size())
	}
	if opt == nil {
		opt = &EvalOptions{}
	}
	// Free each value after its last use so that deep graphs stay small.
	last := make([]int, len(g.Nodes)+1)
	for i, n := range g.Nodes {
		for _, v := range n.Inputs {
			last[v] = i
		}
	}
	last[g.Output] = len(g.Nodes)
	vals := make([]*Tensor, len(g.Nodes)+1)
	vals[0] = &Tensor{Shape: g.Input, Data: x}
	for i, n := range g.Nodes {
		in := make([]*Tensor, len(n.Inputs))
		for k, v := range n.Inputs {
			in[k] = vals[v]
		}
		var f func(float64) float64
		if a, ok := n.Op.(*Activation); ok && opt.Activation != nil {
			f = opt.Activation(i, a)
		}
		var out *Tensor
		var err error
		if f != nil {
			if _, err = prepare(n.Op, in); err == nil {
				out = mapTensor(in[0], f)
			}
		} else {
			out, err = n.Op.Eval(in)
		}
		if err != nil {
			return nil, prefixErr(err, "%s", n.label(i))
		}
		if opt.Trace != nil {
			opt.Trace(i, in, out)
		}
		vals[i+1] = out
		for _, v := range n.Inputs {
			if last[v] == i {
				vals[v] = nil
			}
		}
	}
	return vals[g.Output], nil
}

// EvalBatch evaluates batch samples stored row-major in x and returns the
// outputs row-major. Samples run in parallel, one goroutine per core.
func (g *Graph) EvalBatch(x []float64, batch int, opt *EvalOptions) ([]float64, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	in, out := g.Input.Size(), g.OutputShape().Size()
	if batch < 0 || len(x)%in != 0 || len(x)/in != batch {
		return nil, invalidf("input has %d values, want %d samples of %d", len(x), batch, in)
	}
	y := make([]float64, batch*out)
	var (
		next   atomic.Int64
		failed atomic.Bool
		mu     sync.Mutex
		errAt  = batch
		first  error
		wg     sync.WaitGroup
	)
	for range min(runtime.GOMAXPROCS(0), batch) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= batch {
					return
				}
				t, err := g.eval(x[i*in:(i+1)*in], opt)
				if err != nil {
					mu.Lock()
					if i < errAt {
						errAt, first = i, prefixErr(err, "sample %d", i)
					}
					mu.Unlock()
					failed.Store(true)
					return
				}
				copy(y[i*out:(i+1)*out], t.Data)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return y, nil
}
