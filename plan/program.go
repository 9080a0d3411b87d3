package plan

import (
	"fmt"
	"math"
	"sort"
)

// Step kinds of a Program.
const (
	StepLinear = "linear" // y = M x + b
	StepSquare = "square" // y = x*x
	StepPoly   = "poly"   // y = p(x) elementwise
	StepMul    = "mul"    // y = x0 * x1 elementwise
	StepAdd    = "add"    // y = x0 + x1
	// StepMask keeps the declared outputs and zeroes every other slot
	// (latency: the first window's output positions; batch: the slots of
	// the call's samples). It is the identity on the logical values and
	// costs one level: a product by a 0/1 plaintext, rescaled.
	StepMask = "mask"
	// StepSum adds the cells of equal windows (an average pooling without
	// its division, which the linear steps reading it absorb): y = M x,
	// M's entries 1, every row the same pattern in the input's layout. In
	// latency packing rotations summed in stages (Stages), output r at the
	// position of its window's first cell; in batch packing additions. It
	// costs no level.
	StepSum = "sum"
)

// Polynomial bases.
const (
	Monomial  = "monomial"
	Chebyshev = "chebyshev" // on [-1, 1]
)

// Sparse is a CSR matrix.
type Sparse struct {
	Rows, Cols int
	RowPtr     []int // len Rows+1
	ColIdx     []int
	Val        []float64
}

// NNZ is the number of stored entries.
func (m *Sparse) NNZ() int { return len(m.Val) }

// Row returns the column indices and values of row r.
func (m *Sparse) Row(r int) ([]int, []float64) {
	a, b := m.RowPtr[r], m.RowPtr[r+1]
	return m.ColIdx[a:b], m.Val[a:b]
}

// MulVec returns M x.
func (m *Sparse) MulVec(x []float64) []float64 {
	y := make([]float64, m.Rows)
	for r := 0; r < m.Rows; r++ {
		cols, vals := m.Row(r)
		var s float64
		for i, c := range cols {
			s += vals[i] * x[c]
		}
		y[r] = s
	}
	return y
}

// MaxRowNorm is the largest L2 norm of a row (how much a row amplifies
// independent errors of its inputs).
func (m *Sparse) MaxRowNorm() float64 {
	var best float64
	for r := 0; r < m.Rows; r++ {
		_, vals := m.Row(r)
		var s float64
		for _, v := range vals {
			s += v * v
		}
		best = math.Max(best, math.Sqrt(s))
	}
	return best
}

// SparseBuilder accumulates entries row by row.
type SparseBuilder struct {
	m   Sparse
	row map[int]float64
}

// NewSparseBuilder starts a rows x cols matrix.
func NewSparseBuilder(rows, cols int) *SparseBuilder {
	return &SparseBuilder{m: Sparse{Rows: rows, Cols: cols, RowPtr: []int{0}}, row: map[int]float64{}}
}

// Add adds v at (current row, c).
func (b *SparseBuilder) Add(c int, v float64) { b.row[c] += v }

// EndRow closes the current row, dropping zeros.
func (b *SparseBuilder) EndRow() {
	cols := make([]int, 0, len(b.row))
	for c, v := range b.row {
		if v != 0 {
			cols = append(cols, c)
		}
	}
	sort.Ints(cols)
	for _, c := range cols {
		b.m.ColIdx = append(b.m.ColIdx, c)
		b.m.Val = append(b.m.Val, b.row[c])
	}
	b.m.RowPtr = append(b.m.RowPtr, len(b.m.Val))
	clear(b.row)
}

// Build returns the matrix; every row must have been ended.
func (b *SparseBuilder) Build() *Sparse {
	if len(b.m.RowPtr) != b.m.Rows+1 {
		panic(fmt.Sprintf("sparse builder: %d rows ended, want %d", len(b.m.RowPtr)-1, b.m.Rows))
	}
	m := b.m
	return &m
}

// MulSparse returns A B.
func MulSparse(a, b *Sparse) *Sparse {
	out := NewSparseBuilder(a.Rows, b.Cols)
	for r := 0; r < a.Rows; r++ {
		ac, av := a.Row(r)
		for i, k := range ac {
			bc, bv := b.Row(k)
			for j, c := range bc {
				out.Add(c, av[i]*bv[j])
			}
		}
		out.EndRow()
	}
	return out.Build()
}

// Step is one operation of a Program. Value ids: 0 is the input, step i
// produces value i+1.
type Step struct {
	Kind     string
	Name     string
	In       []int
	Length   int // logical output length
	LevelIn  int // level of the (first) input when the step runs
	Level    int // level of the output
	FeedsMul bool
	// LazyRelin (batch, Square and Mul read only by linear maps): the
	// product is rescaled unrelinearized and the linear maps relinearize
	// their sums, one relinearization per output instead of per input.
	// Rescaling a degree-2 ciphertext multiplies its rounding by s^2 at
	// decryption, so the compiler sets it only where its noise model says
	// the output error barely grows.
	LazyRelin bool `json:",omitempty"`

	// Linear.
	M      *Sparse
	Bias   []float64 // nil or length M.Rows
	Pin    int       // latency: input period
	Pout   int       // latency: output period
	Coeffs bool      // latency: coefficient-encoded product (input and output in coefficients)
	// MaskOutput (latency, slots, the program's last step): the output is
	// written to the first window only and every other slot is zero; the
	// diagonals are zero outside the first window, and Pout >= Pin so
	// that no block folding spreads partial sums.
	MaskOutput   bool `json:",omitempty"`
	LogBSGSRatio int  // latency: log2 of the baby-step giant-step ratio
	// FoldWidth (latency, slots): the blocks a map leaves when Pin > Pout
	// are summed in hoisted stages of up to FoldWidth-1 rotations
	// (FoldStages); 0 or 2: one rotation a stage.
	FoldWidth int `json:",omitempty"`
	// Horner (latency, slots; "small" keys): 0 evaluates the map by the
	// hoisted baby-step giant-step method at LogBSGSRatio; n1 > 0 (a
	// power of two) by giant steps of n1 slots summed by Horner's rule
	// (keys n1 and -n1 only) and baby steps by full key switches,
	// sequential from rot_1 when HornerSeq, else each from a smaller one
	// by a power of two (he/server.Horner).
	Horner    int  `json:",omitempty"`
	HornerSeq bool `json:",omitempty"`
	// Latency, slots: where element i of the input and output sit within
	// their periods (nil: at i). The compiler moves outputs of
	// convolutions next to their receptive fields, which makes their
	// matrices nearly diagonal.
	InPos, OutPos []int
	// Grid (a compiler hint, not part of the program's JSON): the map
	// acts on images, and the compiler places its outputs next to their
	// receptive fields in the input's layout.
	Grid *Grid `json:"-"`
	// Tile (latency, slots, a tiled plan): the slots of one sample. Every
	// tile holds a different sample, so the diagonals read only inside
	// their tile, with offsets that are not taken modulo a period, and
	// write only the output's first period of each tile. TileValid is how
	// many leading slots of each tile hold the input, repeated with its
	// period (the client's input fills the tile; a linear step's output
	// holds its first period only).
	Tile      int `json:",omitempty"`
	TileValid int `json:",omitempty"`

	// Sum (latency): stages of rotations, each summing the previous
	// stage's result rotated by its offsets (0 included), hoisted; the
	// windows' cells are the sums of one offset per stage.
	Stages [][]int `json:",omitempty"`

	// Poly.
	Basis string
	Poly  []float64

	// Groups (latency, slots, an untiled map whose output the plan splits
	// over ciphertexts, Layout.PerCiphertext): M's rows are Groups blocks
	// of Length rows, block g written to output ciphertext g; the blocks
	// share the input's baby-step rotations. 0 or 1: one ciphertext.
	Groups int `json:",omitempty"`

	// Mask (latency): Spread > 0 multiplies each kept slot by its own
	// factor r > 0, drawn by the server for every call, log-uniform on
	// [1/Spread, 1], instead of 1 (plan.Randomized decisions): the signs
	// stay and the magnitudes are known only within the factor Spread.
	Spread float64 `json:",omitempty"`
}

// Program is the private part of a compiled model: the steps with weights.
type Program struct {
	Packing string
	Steps   []Step
	Output  int // value id of the output
}

// OnlyLinearReaders reports whether value v is read by linear steps only
// (and is not the output).
func (p *Program) OnlyLinearReaders(v int) bool {
	if v == p.Output {
		return false
	}
	for i := range p.Steps {
		for _, in := range p.Steps[i].In {
			if in == v && p.Steps[i].Kind != StepLinear {
				return false
			}
		}
	}
	return true
}

// LastCompute is the value id from which on values have the output scale:
// the output, and the input of a final mask step when that input is a
// linear or polynomial step (whose output scale is set freely).
func (p *Program) LastCompute() int {
	v := p.Output
	if s := &p.Steps[v-1]; s.Kind == StepMask && s.In[0] > 0 {
		if in := &p.Steps[s.In[0]-1]; (in.Kind == StepLinear || in.Kind == StepPoly) && !in.FeedsMul {
			v = s.In[0]
		}
	}
	return v
}

// Diagonals returns the non-zero generalized diagonals of a latency-mode
// Linear step: with Q = max(Pin, Pout) and S = min(Pin, Pout), entry (r, c)
// of M lands in diagonal k = (c-r) mod S at position
// i = r + Pout*floor(((c-r) mod Pin)/Pout); each diagonal has length Q.
// Summing diag_k * rot(x, k) over k, then folding the Pin/Pout blocks when
// Pin > Pout, gives M x with period Pout. See DESIGN.md.
func (s *Step) Diagonals() map[int][]float64 {
	q := max(s.Pin, s.Pout)
	d := map[int][]float64{}
	s.entries(func(k, i int, v float64) {
		dk, ok := d[k]
		if !ok {
			dk = make([]float64, q)
			d[k] = dk
		}
		dk[i] += v
	})
	return d
}

// entries calls f with the diagonal k, the position i in it and the value
// of each entry of M (see Diagonals).
func (s *Step) entries(f func(k, i int, v float64)) {
	s.offsets(func(k, i, e int) { f(k, i, s.M.Val[e]) })
}

// offsets calls f with the diagonal k and the position i in it of each
// entry of M, e being the entry's index in M.Val: from the sparsity
// pattern alone, so that it serves a sealed program's matrices, which
// hold no values.
func (s *Step) offsets(f func(k, i, e int)) {
	sm := min(s.Pin, s.Pout)
	for r := 0; r < s.M.Rows; r++ {
		rp := at(s.OutPos, r)
		for e := s.M.RowPtr[r]; e < s.M.RowPtr[r+1]; e++ {
			delta := at(s.InPos, s.M.ColIdx[e]) - rp
			k := mod(delta, sm)
			i := rp + s.Pout*(mod(delta, s.Pin)/s.Pout)
			if s.Tile > 0 {
				k = s.tiledOffset(i, k)
			}
			f(k, i, e)
		}
	}
}

// tiledOffset moves the read of a cyclic diagonal k at position i of a
// tile onto a copy of the same input element inside the tile's valid
// slots: i+k is the element's slot modulo Pin, and the copies are Pin
// apart. Reading there is right for replicated input and for a different
// sample in each tile alike; the cyclic offset, which may read past the
// tile, is right only for replicated input.
func (s *Step) tiledOffset(i, k int) int {
	for i+k >= s.TileValid {
		k -= s.Pin
	}
	return k
}

// WeightPolynomial is a coefficient step's weights as the n coefficients
// of one polynomial, each row reversed: row r's product with the input
// lands at coefficient r*Pin+Pin-1 (he/server.linearCoeffs).
func (s *Step) WeightPolynomial(n int) []float64 {
	w := make([]float64, n)
	for r := 0; r < s.M.Rows; r++ {
		cols, vals := s.M.Row(r)
		for j, c := range cols {
			w[r*s.Pin+s.Pin-1-c] = vals[j]
		}
	}
	return w
}

// BiasCoefficients is a coefficient step's bias at its output
// coefficients r*Pin+Pin-1 of n (zeros without a bias).
func (s *Step) BiasCoefficients(n int) []float64 {
	v := make([]float64, n)
	for r, b := range s.Bias {
		v[r*s.Pin+s.Pin-1] = b
	}
	return v
}

// DiagonalIndices returns the sorted indices of the step's non-zero
// diagonals, from its sparsity pattern (a sealed matrix holds no values).
func (s *Step) DiagonalIndices() []int {
	seen := map[int]bool{}
	var idx []int
	s.offsets(func(k, _, _ int) {
		if !seen[k] {
			seen[k] = true
			idx = append(idx, k)
		}
	})
	sort.Ints(idx)
	return idx
}

// SlotWindows is how a latency Linear step's diagonals and bias fill the
// slots: they repeat every window slots (a tile, or the larger period),
// in windows windows (the first only, or the first n tiles, when the
// step masks its output); the bias repeats every biasStep slots within
// them (Pout, or a window when masked).
func (s *Step) SlotWindows(slots, n int) (window, windows, biasStep int) {
	window = max(s.Pin, s.Pout, s.Tile)
	windows, biasStep = slots/window, s.Pout
	if s.MaskOutput {
		windows, biasStep = 1, window
		if s.Tile > 0 {
			windows = n
		}
	}
	return window, windows, biasStep
}

// SumLayout returns, for a Sum step whose input elements sit at inPos,
// where its outputs sit (each at its window's first cell) and the stages
// of rotations that compute it (sumStages); ok is false unless every
// row's window is the same pattern of positions.
func (s *Step) SumLayout(inPos []int) (outPos []int, stages [][]int, ok bool) {
	outPos, offsets, ok := s.sumOffsets(inPos)
	if !ok {
		return nil, nil, false
	}
	return outPos, sumStages(offsets), true
}

// sumStages factors a window's cell offsets (row-major, first 0) into
// stages whose sums of one offset each are the cells, with the fewest
// rotations: a grid (a row's offsets plus each row's first) is the row's
// stages and the rows' (factored again), an axis of 2^m equally spaced
// cells m stages of two (0 and d, 2d, 4d, ...), so that a 2x2 window
// takes two rotations and a 4x4 one four; anything else is one stage.
func sumStages(offsets []int) [][]int {
	best := [][]int{offsets}
	if len(offsets) > 1 {
		best = axisStages(offsets)
	}
	for kw := 2; kw < len(offsets); kw++ {
		if len(offsets)%kw != 0 {
			continue
		}
		grid := true
		for j, o := range offsets {
			grid = grid && o == offsets[j/kw*kw]+offsets[j%kw]
		}
		if !grid {
			continue
		}
		var rows []int
		for j := 0; j < len(offsets); j += kw {
			rows = append(rows, offsets[j])
		}
		if c := append(axisStages(offsets[:kw]), sumStages(rows)...); stageRotations(c) < stageRotations(best) {
			best = c
		}
	}
	return best
}

// stageRotations is the number of rotations of stages.
func stageRotations(stages [][]int) int {
	n := 0
	for _, st := range stages {
		n += len(st) - 1
	}
	return n
}

// axisStages is sumStages for one axis: offsets 0, d, 2d, ... of a
// power-of-two count as doubling stages, else the offsets as one stage.
func axisStages(axis []int) [][]int {
	n, d := len(axis), axis[1]
	even := n&(n-1) == 0
	for j, o := range axis {
		even = even && o == j*d
	}
	if !even {
		return [][]int{axis}
	}
	var stages [][]int
	for step := d; step < n*d; step *= 2 {
		stages = append(stages, []int{0, step})
	}
	return stages
}

// sumOffsets is SumLayout's outputs and the window's cell offsets.
func (s *Step) sumOffsets(inPos []int) (outPos, offsets []int, ok bool) {
	outPos = make([]int, s.M.Rows)
	for r := 0; r < s.M.Rows; r++ {
		cols, _ := s.M.Row(r)
		if len(cols) == 0 {
			return nil, nil, false
		}
		first := at(inPos, cols[0])
		outPos[r] = first
		if r == 0 {
			for _, c := range cols {
				offsets = append(offsets, at(inPos, c)-first)
			}
			continue
		}
		if len(cols) != len(offsets) {
			return nil, nil, false
		}
		for j, c := range cols {
			if at(inPos, c)-first != offsets[j] {
				return nil, nil, false
			}
		}
	}
	return outPos, offsets, true
}

// FoldRotations are the rotations that sum the Pin/Pout blocks after the
// diagonal product of a latency-mode Linear step (empty when Pin <= Pout),
// those of every stage of FoldStages.
func (s *Step) FoldRotations() []int {
	var r []int
	for _, stage := range s.FoldStages() {
		r = append(r, stage...)
	}
	return r
}

// FoldStages are the stages that sum the Pin/Pout blocks of a latency-mode
// Linear step, each adding to the previous stage's result its rotations
// by the stage's offsets. With FoldWidth 0 or 2, a rotation by Pin/2, then
// Pin/4, ..., then Pout, one a stage; with FoldWidth w (a power of two of
// 4 or more), stages of up to w-1 rotations from one decomposition (the
// server hoists them): Pout, 2 Pout, ..., (w-1) Pout, then the same times
// w, and so on, the last stage as wide as the blocks left. Either way
// slot i ends as the sum of the input's slots i + m Pout, m < Pin/Pout.
func (s *Step) FoldStages() [][]int {
	var stages [][]int
	if !s.foldWidthValid() || s.FoldWidth <= 2 {
		for k := s.Pin / 2; k >= s.Pout; k /= 2 {
			stages = append(stages, []int{k})
		}
		return stages
	}
	for b := 1; b*s.Pout < s.Pin; b *= s.FoldWidth {
		w := min(s.FoldWidth, s.Pin/(b*s.Pout))
		stage := make([]int, w-1)
		for j := range stage {
			stage[j] = (j + 1) * b * s.Pout
		}
		stages = append(stages, stage)
	}
	return stages
}

// foldWidthValid: FoldWidth is 0 or a power of two no larger than the
// blocks' count rounded up (a sealed program comes from its owner; any
// other width folds one rotation a stage).
func (s *Step) foldWidthValid() bool {
	w := s.FoldWidth
	return w == 0 || w >= 2 && w&(w-1) == 0 && s.Pout > 0 && w <= 2*max(s.Pin/s.Pout, 1)
}

// CheckFoldWidth refuses a FoldWidth that is not 0 or a power of two up
// to the step's blocks (twice their count, rounded).
func (s *Step) CheckFoldWidth() error {
	if !s.foldWidthValid() {
		return fmt.Errorf("step %q: fold width %d is not 0 or a power of two up to its %d blocks", s.Name, s.FoldWidth, s.Pin/max(s.Pout, 1))
	}
	return nil
}

// at maps element i through a position list (identity when nil).
func at(pos []int, i int) int {
	if pos == nil {
		return i
	}
	return pos[i]
}

// Pos returns the position of element i in a layout's period.
func Pos(pos []int, i int) int { return at(pos, i) }

func mod(a, m int) int {
	a %= m
	if a < 0 {
		a += m
	}
	return a
}

// EvalPlain evaluates the program on one sample in float64, with the same
// approximations the encrypted evaluation uses (no noise).
func (p *Program) EvalPlain(x []float64) []float64 {
	vals := make([][]float64, len(p.Steps)+1)
	vals[0] = x
	for i := range p.Steps {
		vals[i+1] = p.Steps[i].evalPlain(vals)
	}
	return vals[p.Output]
}

// Trace evaluates like EvalPlain and returns every value.
func (p *Program) Trace(x []float64) [][]float64 {
	vals := make([][]float64, len(p.Steps)+1)
	vals[0] = x
	for i := range p.Steps {
		vals[i+1] = p.Steps[i].evalPlain(vals)
	}
	return vals
}

func (s *Step) evalPlain(vals [][]float64) []float64 {
	x := vals[s.In[0]]
	y := make([]float64, s.Length)
	switch s.Kind {
	case StepSum:
		y = s.M.MulVec(x)
	case StepLinear:
		y = s.M.MulVec(x)
		for i := range s.Bias {
			y[i] += s.Bias[i]
		}
	case StepSquare:
		for i := range y {
			y[i] = x[i] * x[i]
		}
	case StepMul:
		z := vals[s.In[1]]
		for i := range y {
			y[i] = x[i] * z[i]
		}
	case StepAdd:
		z := vals[s.In[1]]
		for i := range y {
			y[i] = x[i] + z[i]
		}
	case StepPoly:
		for i := range y {
			y[i] = EvalPoly(s.Basis, s.Poly, x[i])
		}
	case StepMask:
		copy(y, x)
	}
	return y
}

// EvalPoly evaluates a polynomial in the given basis.
func EvalPoly(basis string, c []float64, x float64) float64 {
	if basis == Chebyshev {
		// Clenshaw recurrence.
		var b1, b2 float64
		for k := len(c) - 1; k >= 1; k-- {
			b1, b2 = 2*x*b1-b2+c[k], b1
		}
		return x*b1 - b2 + c[0]
	}
	var y float64
	for k := len(c) - 1; k >= 0; k-- {
		y = y*x + c[k]
	}
	return y
}

// PolyDepth is the multiplicative depth Lattigo's polynomial evaluator
// uses for a polynomial of the given degree: ceil(log2(degree+1)).
func PolyDepth(degree int) int {
	d := 0
	for (1 << d) < degree+1 {
		d++
	}
	return d
}

// Group returns block g of a grouped linear step (Groups): the step with
// M cut to rows [g*Length, (g+1)*Length) and Groups 0.
// Stored zeros stay stored: they keep the diagonals, and so the
// rotations, the plan was compiled for.
func (s *Step) Group(g int) Step {
	m := &Sparse{Rows: s.Length, Cols: s.M.Cols, RowPtr: make([]int, s.Length+1)}
	for r := range s.Length {
		if row := g*s.Length + r; row < s.M.Rows {
			cols, vals := s.M.Row(row)
			m.ColIdx = append(m.ColIdx, cols...)
			m.Val = append(m.Val, vals...)
		}
		m.RowPtr[r+1] = len(m.Val)
	}
	out := *s
	out.M, out.Groups = m, 0
	if s.Bias != nil {
		out.Bias = make([]float64, s.Length)
		copy(out.Bias, s.Bias[min(g*s.Length, len(s.Bias)):])
	}
	return out
}
