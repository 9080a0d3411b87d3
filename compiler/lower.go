package compiler

import (
	"math"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
)

// irNode is a step of the program under construction.
type irNode struct {
	step  plan.Step
	dead  bool
	users int
	// pool: the step is an average pooling, which may run as a Sum step
	// (poolSums).
	pool bool
}

type lowering struct {
	g     *nn.Graph
	opts  *Options
	nodes []*irNode // ir value id i+1 is nodes[i]; 0 is the input
	irOf  []int     // nn value id -> ir value id
	acts  []plan.Activation
	warn  []string
	calib *calibration
}

func (l *lowering) length(v int) int {
	if v == 0 {
		return l.g.Input.Size()
	}
	return l.nodes[v-1].step.Length
}

func (l *lowering) emit(s plan.Step) int {
	l.nodes = append(l.nodes, &irNode{step: s})
	return len(l.nodes)
}

func (l *lowering) linear(name string, in int, m *plan.Sparse, bias []float64) int {
	return l.emit(plan.Step{Kind: plan.StepLinear, Name: name, In: []int{in}, Length: m.Rows, M: m, Bias: bias})
}

// diag returns a linear step x*scale+shift with per-element scale and shift.
func (l *lowering) diag(name string, in int, scale, shift []float64) int {
	n := len(scale)
	b := plan.NewSparseBuilder(n, n)
	for i := 0; i < n; i++ {
		b.Add(i, scale[i])
		b.EndRow()
	}
	var bias []float64
	for _, s := range shift {
		if s != 0 {
			bias = shift
			break
		}
	}
	return l.linear(name, in, b.Build(), bias)
}

func fill(n int, v float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func unsupported(n *nn.Node, format string, args ...any) error {
	e := fheserve.Errorf(fheserve.EUNSUPPORTED, format, args...)
	e.Message = "node \"" + n.Name + "\" (" + n.OpType + "): " + e.Message
	return e
}

// lower turns the graph (head removed) into program steps.
func (l *lowering) lower(nodes []*nn.Node, output int) (int, error) {
	l.irOf = make([]int, len(l.g.Nodes)+1)
	for i, n := range nodes {
		if n == nil {
			continue
		}
		id, err := l.lowerNode(i, n)
		if err != nil {
			return 0, err
		}
		l.irOf[i+1] = id
	}
	return l.irOf[output], nil
}

// lowerNode emits the steps of node n, the graph's node i, and returns
// the step that computes its value.
func (l *lowering) lowerNode(i int, n *nn.Node) (int, error) {
	in := make([]int, len(n.Inputs))
	var inShape nn.Shape
	for j, x := range n.Inputs {
		in[j] = l.irOf[x]
		if j == 0 {
			inShape = l.g.ValueShape(x)
		}
	}
	size := n.Shape.Size()
	switch op := n.Op.(type) {
	case *nn.Reshape:
		return in[0], nil
	case *nn.Dense:
		return l.linear(n.Name, in[0], denseMatrix(op), op.B), nil
	case *nn.Conv:
		m, bias := convMatrix(op, inShape, n.Shape)
		return l.gridded(n.Name, in[0], m, bias, grid(inShape, n.Shape, op.StrideH, op.StrideW, op.PadT, op.PadL, false)), nil
	case *nn.AvgPool:
		id := l.gridded(n.Name, in[0], poolMatrix(op, inShape, n.Shape), nil, grid(inShape, n.Shape, op.StrideH, op.StrideW, op.PadT, op.PadL, true))
		l.nodes[id-1].pool = true
		return id, nil
	case *nn.Pad:
		return l.gridded(n.Name, in[0], padMatrix(op, inShape, n.Shape), nil, grid(inShape, n.Shape, 1, 1, op.PadT, op.PadL, true)), nil
	case *nn.Affine:
		return l.diag(n.Name, in[0], broadcast(op.Scale, n.Shape, 1), broadcast(op.Shift, n.Shape, 0)), nil
	case *nn.Combine:
		return l.combine(n.Name, op, in, size), nil
	case *nn.Mul:
		if in[0] == in[1] {
			return l.emit(plan.Step{Kind: plan.StepSquare, Name: n.Name, In: []int{in[0]}, Length: size}), nil
		}
		return l.emit(plan.Step{Kind: plan.StepMul, Name: n.Name, In: in, Length: size}), nil
	case *nn.Poly:
		return l.poly(n, in[0], op.Coeffs, size)
	case *nn.Activation:
		return l.activation(n, i, in[0], op, size)
	case *nn.Softmax:
		return 0, unsupported(n, "Softmax is only supported as the last operation of a model, where the client applies it after decryption")
	}
	return 0, unsupported(n, "operation %s cannot be evaluated under encryption", n.Op.Kind())
}

// denseMatrix is the weight matrix of a dense layer.
func denseMatrix(op *nn.Dense) *plan.Sparse {
	b := plan.NewSparseBuilder(op.Out, op.In)
	for r := 0; r < op.Out; r++ {
		for c := 0; c < op.In; c++ {
			b.Add(c, op.W[r*op.In+c])
		}
		b.EndRow()
	}
	return b.Build()
}

// combine emits a*x + b*y: one diagonal map when x and y are the same
// value, else an addition of the inputs, each scaled unless by 1.
func (l *lowering) combine(name string, op *nn.Combine, in []int, size int) int {
	if in[0] == in[1] {
		return l.diag(name, in[0], fill(size, op.A+op.B), nil)
	}
	a, b := in[0], in[1]
	if op.A != 1 {
		a = l.diag(name+"/a", a, fill(size, op.A), nil)
	}
	if op.B != 1 {
		b = l.diag(name+"/b", b, fill(size, op.B), nil)
	}
	return l.emit(plan.Step{Kind: plan.StepAdd, Name: name, In: []int{a, b}, Length: size})
}

// poly lowers an elementwise polynomial: degree <= 1 to an affine map,
// degree 2 to affine, square, affine (a(x+b)^2+c, the affine maps fuse into
// neighbouring linear steps), higher degrees to a monomial-basis step.
func (l *lowering) poly(n *nn.Node, in int, c []float64, size int) (int, error) {
	for len(c) > 0 && c[len(c)-1] == 0 {
		c = c[:len(c)-1]
	}
	switch len(c) {
	case 0:
		return l.diag(n.Name, in, fill(size, 0), nil), nil
	case 1:
		return l.diag(n.Name, in, fill(size, 0), fill(size, c[0])), nil
	case 2:
		return l.diag(n.Name, in, fill(size, c[1]), fill(size, c[0])), nil
	case 3:
		a, b, c0 := c[2], c[1], c[0]
		beta := b / (2 * a)
		x := in
		if beta != 0 {
			x = l.diag(n.Name+"/pre", in, fill(size, 1), fill(size, beta))
		}
		sq := l.emit(plan.Step{Kind: plan.StepSquare, Name: n.Name, In: []int{x}, Length: size})
		post := c0 - a*beta*beta
		if a == 1 && post == 0 {
			return sq, nil
		}
		return l.diag(n.Name+"/post", sq, fill(size, a), fill(size, post)), nil
	}
	if len(c)-1 > 31 {
		return 0, unsupported(n, "polynomial degree %d is above the supported 31", len(c)-1)
	}
	return l.emit(plan.Step{Kind: plan.StepPoly, Name: n.Name, In: []int{in}, Length: size,
		Basis: plan.Monomial, Poly: append([]float64(nil), c...)}), nil
}

// activation approximates a non-polynomial function by a Chebyshev
// interpolant on the calibrated interval of its input.
func (l *lowering) activation(n *nn.Node, idx, in int, op *nn.Activation, size int) (int, error) {
	f, err := nn.ActivationFunc(op.Func)
	if err != nil {
		return 0, unsupported(n, "%v", err)
	}
	degree := l.opts.Degree
	if d, ok := l.opts.Degrees[n.Name]; ok {
		degree = d
	}
	if degree < 2 || degree > 63 {
		return 0, fheserve.Errorf(fheserve.EINVALID, "activation degree %d for node %q is out of range 2..63", degree, n.Name)
	}
	source := "calibration"
	lo, hi, samples, clipped := l.calib.interval(idx, l.opts.Margin)
	if samples == nil {
		lo, hi = -DefaultInterval, DefaultInterval
		source = "default"
		l.warn = append(l.warn, "activation "+n.Name+" ("+op.Func+"): no calibration data, using the default interval [-8, 8]; inputs outside it are approximated badly")
	}
	act := approximation(f, degree, l.opts.Fit, lo, hi, samples)
	act.Node, act.Func, act.Depth, act.Source, act.Clipped = n.Name, op.Func, plan.PolyDepth(degree), source, clipped
	l.acts = append(l.acts, act)
	pre := l.diag(n.Name+"/pre", in, fill(size, act.PreScale), fill(size, act.PreOffset))
	return l.emit(plan.Step{Kind: plan.StepPoly, Name: n.Name, In: []int{pre}, Length: size,
		Basis: plan.Chebyshev, Poly: act.Coeffs}), nil
}

// approximation fits f on [lo, hi] with a Chebyshev series of the degree:
// least squares on the calibration samples for FitLeastSquares (when there
// are samples), interpolation otherwise. MaxError is measured on the
// samples inside the interval and on a dense grid of it.
func approximation(f func(float64) float64, degree int, fit string, lo, hi float64, samples []float64) plan.Activation {
	act := plan.Activation{Interval: [2]float64{lo, hi}, Degree: degree, Basis: plan.Chebyshev}
	if fit == FitLeastSquares && samples != nil {
		act.Coeffs = leastSquaresChebyshev(f, lo, hi, degree, samples)
		act.Fit = FitLeastSquares
	} else {
		act.Coeffs = chebyshevInterpolant(f, lo, hi, degree)
	}
	act.PreScale = 2 / (hi - lo)
	act.PreOffset = -(hi + lo) / (hi - lo)
	check := func(x float64) {
		if x < lo || x > hi {
			return
		}
		act.MaxError = math.Max(act.MaxError, math.Abs(act.Approximate(x)-f(x)))
	}
	for _, x := range samples {
		check(x)
	}
	for i := 0; i <= 1000; i++ {
		check(lo + (hi-lo)*float64(i)/1000)
	}
	return act
}

// chebyshevInterpolant returns the coefficients on [-1, 1] of the degree-d
// Chebyshev interpolant of f on [lo, hi] (nodes of the first kind).
func chebyshevInterpolant(f func(float64) float64, lo, hi float64, d int) []float64 {
	n := d + 1
	fx := make([]float64, n)
	for k := 0; k < n; k++ {
		t := math.Cos(math.Pi * (float64(k) + 0.5) / float64(n))
		fx[k] = f((hi-lo)/2*t + (hi+lo)/2)
	}
	c := make([]float64, n)
	for j := 0; j < n; j++ {
		var s float64
		for k := 0; k < n; k++ {
			s += fx[k] * math.Cos(math.Pi*float64(j)*(float64(k)+0.5)/float64(n))
		}
		c[j] = 2 * s / float64(n)
	}
	c[0] /= 2
	return c
}

// broadcast expands a scalar, per-channel or full vector to the shape.
func broadcast(v []float64, shape nn.Shape, def float64) []float64 {
	size := shape.Size()
	out := make([]float64, size)
	switch {
	case len(v) == 0:
		for i := range out {
			out[i] = def
		}
	case len(v) == 1:
		for i := range out {
			out[i] = v[0]
		}
	case len(v) == size:
		copy(out, v)
	default: // per channel
		per := size / len(v)
		for i := range out {
			out[i] = v[i/per]
		}
	}
	return out
}

func chw(s nn.Shape) (c, h, w int) {
	switch len(s) {
	case 3:
		return s[0], s[1], s[2]
	case 2:
		return 1, s[0], s[1]
	}
	return s.Size(), 1, 1
}

func convMatrix(op *nn.Conv, in, out nn.Shape) (*plan.Sparse, []float64) {
	_, h, w := chw(in)
	oc, oh, ow := chw(out)
	b := plan.NewSparseBuilder(oc*oh*ow, op.InC*h*w)
	var bias []float64
	if op.B != nil {
		bias = make([]float64, oc*oh*ow)
	}
	for o := 0; o < oc; o++ {
		for y := 0; y < oh; y++ {
			for x := 0; x < ow; x++ {
				for c := 0; c < op.InC; c++ {
					for ky := 0; ky < op.KH; ky++ {
						iy := y*op.StrideH + ky - op.PadT
						if iy < 0 || iy >= h {
							continue
						}
						for kx := 0; kx < op.KW; kx++ {
							ix := x*op.StrideW + kx - op.PadL
							if ix < 0 || ix >= w {
								continue
							}
							b.Add((c*h+iy)*w+ix, op.W[((o*op.InC+c)*op.KH+ky)*op.KW+kx])
						}
					}
				}
				if bias != nil {
					bias[(o*oh+y)*ow+x] = op.B[o]
				}
				b.EndRow()
			}
		}
	}
	return b.Build(), bias
}

// gridded emits a linear step on images with its grid, from which the
// layout places its outputs (plan.Grid.Positions).
func (l *lowering) gridded(name string, in int, m *plan.Sparse, bias []float64, g *plan.Grid) int {
	id := l.linear(name, in, m, bias)
	l.nodes[id-1].step.Grid = g
	return id
}

// grid is the grid of a map from images of shape in to images of shape
// out with the given strides and top and left padding.
func grid(in, out nn.Shape, sh, sw, padT, padL int, depthwise bool) *plan.Grid {
	c, h, w := chw(in)
	oc, oh, ow := chw(out)
	return &plan.Grid{InC: c, H: h, W: w, OutC: oc, OH: oh, OW: ow, SH: sh, SW: sw, OffH: -padT, OffW: -padL, Depthwise: depthwise}
}

func poolMatrix(op *nn.AvgPool, in, out nn.Shape) *plan.Sparse {
	c, h, w := chw(in)
	_, oh, ow := chw(out)
	b := plan.NewSparseBuilder(c*oh*ow, c*h*w)
	for ch := 0; ch < c; ch++ {
		for y := 0; y < oh; y++ {
			for x := 0; x < ow; x++ {
				var cells [][2]int
				count := 0
				for ky := 0; ky < op.KH; ky++ {
					iy := y*op.StrideH + ky - op.PadT
					for kx := 0; kx < op.KW; kx++ {
						ix := x*op.StrideW + kx - op.PadL
						inside := iy >= 0 && iy < h && ix >= 0 && ix < w
						// Padding cells count when CountIncludePad, but
						// only those within the padded image.
						if inside {
							cells = append(cells, [2]int{iy, ix})
							count++
						} else if op.CountIncludePad && iy >= -op.PadT && iy < h+op.PadB && ix >= -op.PadL && ix < w+op.PadR {
							count++
						}
					}
				}
				for _, cell := range cells {
					b.Add((ch*h+cell[0])*w+cell[1], 1/float64(count))
				}
				b.EndRow()
			}
		}
	}
	return b.Build()
}

func padMatrix(op *nn.Pad, in, out nn.Shape) *plan.Sparse {
	c, h, w := chw(in)
	_, oh, ow := chw(out)
	b := plan.NewSparseBuilder(c*oh*ow, c*h*w)
	for ch := 0; ch < c; ch++ {
		for y := 0; y < oh; y++ {
			for x := 0; x < ow; x++ {
				iy, ix := y-op.PadT, x-op.PadL
				if iy >= 0 && iy < h && ix >= 0 && ix < w {
					b.Add((ch*h+iy)*w+ix, 1)
				}
				b.EndRow()
			}
		}
	}
	return b.Build()
}
