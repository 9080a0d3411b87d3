// Package compiler turns a model graph into a plan: the packing, the
// multiplicative depth, the smallest secure CKKS parameters that fit, the
// exact rotation keys, the activation approximations, estimated sizes and
// operation counts (the public plan.Plan), and the steps with their
// weights (the private plan.Program).
package compiler

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/server"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
)

// DefaultInterval is the half-width of the interval on which activations
// are approximated when no calibration data is given: [-8, 8].
const DefaultInterval = 8.0

// DefaultMargin is the default widening of calibrated activation
// intervals, as a fraction of their width on each side.
const DefaultMargin = 0.1

// Privacy and precision defaults (see Options).
const (
	DefaultPrivacyBits   = 30
	DefaultQueryBudget   = 1 << 14
	DefaultPrecisionBits = 8
	// NoPrivacy as Options.PrivacyBits turns flooding off (tests and
	// benchmarks of the bare engine only).
	NoPrivacy = -1
)

// DefaultDegree is the default degree of activation approximations
// (depth 3).
const DefaultDegree = 7

// Options steer compilation.
type Options struct {
	Packing string // plan.Latency (default) or plan.Batch
	// Calibration holds representative inputs, row-major, each of the
	// graph's input size. Activation intervals and the output range come
	// from it.
	Calibration []float64
	// Degree of non-polynomial activation approximations (DefaultDegree
	// when 0); Degrees overrides it per node name.
	Degree  int
	Degrees map[string]int
	// Fit is how activations are approximated: FitInterpolation (the
	// default) or FitLeastSquares.
	Fit string
	// Margin widens each calibrated activation interval by this fraction
	// of its width on each side (DefaultMargin when 0): inputs beyond the
	// calibration data up to the margin are still approximated well.
	Margin float64
	// LogN forces the ring degree (0 picks the smallest that fits).
	LogN int
	// PrivacyBits is the statistical security parameter lambda of circuit
	// privacy against an honest-but-curious user (DefaultPrivacyBits when
	// 0; NoPrivacy turns flooding off): results are flooded so that the
	// statistical distance between what a user sees over QueryBudget
	// samples and what a simulator knowing only the outputs produces is at
	// most 2^(-lambda/2) (Renyi-divergence accounting, Li, Micciancio,
	// Schultz and Sorrell, CRYPTO 2022).
	PrivacyBits float64
	// QueryBudget is the number of samples over which the privacy
	// guarantee holds (DefaultQueryBudget when 0).
	QueryBudget int
	// PrecisionBits is the precision an owner asks for relative to the
	// outputs: the encryption's stated error (evaluation noise, flooding,
	// result compression) is at most OutputBound * 2^-PrecisionBits
	// (DefaultPrecisionBits when neither this nor Precision is set).
	// Privacy and precision both cost scale bits; the compiler picks a
	// ring and scale that meet both, or refuses and says what each would
	// need.
	//
	// The default, 8 bits, is kept because it is what a classifier needs
	// and no more: the error stays below OutputBound/256 (OutputBound is
	// 1.5 times the largest calibrated output), so a row's class can
	// change only when its two largest outputs are within 1/128 of the
	// bound of each other (measured: at most 3 of 10,000 test images of
	// the bundled and example classifiers changed class under
	// encryption); every further bit costs a bit of scale in every prime,
	// or two bits of privacy, and the keys grow with it. An owner who
	// needs a number rather than a class (a regression, a score against
	// a threshold) says so with Precision.
	PrecisionBits float64
	// Precision is the precision an owner asks for in the outputs' own
	// units: the largest error of any output value that the owner
	// accepts, against the exact network (the model as given, activations
	// not approximated) on inputs like the calibration data. It counts
	// everything: the activation approximations carried to the outputs
	// (plan.Precision.ApproxOutputError, measured on the calibration rows)
	// and the encryption's error. The compiler raises the scale and the
	// ring until the stated total (plan.Precision.OutputError) is at most
	// Precision and, where the approximations alone leave too little room
	// and the owner set no degree, the activations' degrees; or it refuses
	// and says what the best plan states and what Precision would need.
	// 0: PrecisionBits applies. Not with PrecisionBits; with
	// non-polynomial activations, only with calibration data.
	Precision float64
	// OutputBound forces the largest output magnitude the parameters must
	// carry (0 takes it from calibration).
	OutputBound float64
	// Keys is how the linear maps in slots are evaluated, and so which
	// rotation keys the user uploads. KeysFast: the hoisted baby-step
	// giant-step method, its ratios chosen together for the fewest
	// rotations (weighted by their level), then the fewest key bytes.
	// KeysSmall (the default): a map may instead run by giant steps summed
	// by Horner's rule (keys n1 and -n1 only) and baby steps by full key
	// switches from rot_1 or powers of two, so that every map shares a few
	// keys; the choice minimizes key bytes plus a quarter of the key
	// switches' cost (a key switch at level l counted as the bytes of a
	// key at l), so that a key is worth four rotations of an evaluation.
	// Small is the default because the upload, sent before the first
	// prediction and again with every new key set, is what holds users
	// back: the bundled cnn's keys are 6.6x smaller (157.5 to 23.8 MB;
	// fmnist-cnn-poly 1.19 GB to 80 MB), key generation 8x faster and the
	// evaluator's peak memory a third, for 1.3x (mlp) to 5x
	// (cnn) the evaluation time, repaid after some 90 cnn predictions per
	// key set at a 10 Mbit/s uplink (BENCHMARKS.md, "Small keys: Horner
	// giant steps").
	// KeysDerived: the program of KeysFast, but the user uploads master
	// keys of rotations by powers of two, over one more special prime,
	// and the server derives the Galois keys from them once per key set
	// (he.PlanDerivation; hierarchical rotation keys): an upload near the
	// small choice's for the fast choice's evaluation, paid for by the
	// server's derivation (Plan.Derivation) and by the master prime's bits
	// of the security budget, which the parameters leave free.
	Keys string
	// Pooling is how an average pooling after an activation runs:
	// PoolingFuse fuses it into the linear map after it, PoolingSum runs
	// it as a sum of rotations (plan.StepSum), "" (the default) builds
	// both and keeps the cheaper (compileProgram). Sealed plans fuse.
	Pooling string
	// Sealed compiles for sealed weights: the owner encrypts the weights
	// under each user's public key (he/client.Seal) and the server
	// multiplies ciphertexts (plan.Plan.Sealed). Latency packing only.
	Sealed bool
	// SealedHeadroom gives each sealed linear map a second level: the
	// sealed weights are encrypted at the scale of two primes, so that
	// their encryption noise (which the product multiplies by the
	// activations) vanishes. The compiler sets it when a sealed plan
	// misses the privacy or precision asked for without it.
	SealedHeadroom bool
	// NoTiles keeps a latency plan to one sample per call. By default a
	// latency plan whose largest period leaves room for two or more
	// copies puts a different sample in each copy (a tile), so that one
	// call serves that many samples; its linear maps then read inside
	// their tile only, which costs more diagonals and rotations (the plan
	// reports both: Plan.Untiled).
	NoTiles bool
	// maskStep keeps a latency result to its outputs by a mask step
	// always (randomized gallery decisions randomize in it).
	maskStep bool
}

// Pooling choices (Options.Pooling).
const (
	PoolingFuse = "fuse"
	PoolingSum  = "sum"
)

// Key choices (Options.Keys).
const (
	KeysSmall   = "small"
	KeysFast    = "fast"
	KeysDerived = plan.KeysDerived
)

// Result is a compiled model.
type Result struct {
	Plan    *plan.Plan
	Program *plan.Program
}

// Compile compiles a graph.
func Compile(g *nn.Graph, opts Options) (*Result, error) {
	// With calibration data and no approximation setting, the settings
	// are chosen from the data (searchActivations).
	search := len(opts.Calibration) > 0 && opts.Degree == 0 && len(opts.Degrees) == 0 && opts.Fit == "" && opts.Margin == 0
	ownDegrees := opts.Degree != 0 || len(opts.Degrees) > 0
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	if err := checkDegrees(g, opts.Degrees); err != nil {
		return nil, err
	}
	nodes, output, head := splitHead(g)
	cal, err := calibrate(g, opts.Calibration, output)
	if err != nil {
		return nil, err
	}
	var choice *plan.ActivationChoice
	if search {
		choice = chooseActivations(g, cal, output, &opts)
	}
	compile := func(opts *Options) (*Result, error) {
		return compileProgram(g, opts, cal, choice, nodes, output, head)
	}
	res, err := compile(&opts)
	if err != nil && opts.Sealed && !opts.SealedHeadroom && fheserve.ErrorCode(err) == fheserve.EUNSUPPORTED {
		// The sealed weights' encryption noise may be what misses: try
		// with headroom, keep the first refusal if that fails too.
		opts.SealedHeadroom = true
		if r, err2 := compile(&opts); err2 == nil {
			res, err = r, nil
		}
	}
	if opts.Precision > 0 && !ownDegrees {
		res, err = raiseDegrees(g, output, &opts, res, err, compile)
	}
	return res, err
}

// compileProgram lowers the graph's nodes with the approximation settings
// of opts and builds the plan.
func compileProgram(g *nn.Graph, opts *Options, cal *calibration, choice *plan.ActivationChoice, nodes []*nn.Node, output int, head nn.Head) (*Result, error) {
	l := &lowering{g: g, opts: opts, calib: cal}
	if choice != nil && !choice.Met {
		l.warn = append(l.warn, unmetWarning(choice))
	}
	out, err := l.lower(nodes, output)
	if err != nil {
		return nil, err
	}
	if out == 0 {
		return nil, fheserve.Errorf(fheserve.EUNSUPPORTED, "model %q computes nothing from its input", g.Name)
	}
	if opts.Precision > 0 && len(l.acts) > 0 && !cal.given {
		return nil, fheserve.Errorf(fheserve.EINVALID, "--precision bounds the error against the exact model on inputs like the calibration data, and model %q approximates activations: give calibration data (--calibration)", g.Name)
	}
	sums := cloneNodes(l.nodes)
	if opts.Sealed || opts.Pooling == PoolingFuse || poolSums(sums, out) == 0 {
		return buildProgram(g, opts, cal, choice, l, fuse(l.nodes, out, opts.Packing), output, head)
	}
	alt, altErr := buildProgram(g, opts, cal, choice, l, fuse(sums, out, opts.Packing), output, head)
	if opts.Pooling == PoolingSum {
		return alt, altErr
	}
	// Poolings as Sum steps (poolSums) against poolings fused into the
	// linear maps around them: the cheaper evaluation wins.
	res, err := buildProgram(g, opts, cal, choice, l, fuse(l.nodes, out, opts.Packing), output, head)
	if altErr == nil && (err != nil || cheaper(alt.Plan, res.Plan)) {
		return alt, nil
	}
	return res, err
}

// buildProgram builds the plan of a fused program.
func buildProgram(g *nn.Graph, opts *Options, cal *calibration, choice *plan.ActivationChoice, l *lowering, prog *plan.Program, output int, head nn.Head) (*Result, error) {
	// Two ways to keep a latency result to its outputs when the last step
	// is a linear map: mask its diagonals (no level, but the zeroed slots
	// keep the diagonals' encoding error times the map's inputs), or a
	// mask step (a level, and a smaller leak). Both are compiled; the
	// smaller ring, then the smaller keys, then more privacy wins.
	variant := func(maskStep bool) (*Result, error) {
		pr := &plan.Program{Packing: prog.Packing, Steps: append([]plan.Step(nil), prog.Steps...), Output: prog.Output}
		c := &compilation{g: g, opts: opts, prog: pr, head: head, acts: l.acts, warn: append([]string(nil), l.warn...), calib: cal, output: output, maskStep: maskStep, choice: choice}
		p, err := c.build()
		if err != nil {
			return nil, err
		}
		return &Result{Plan: p, Program: pr}, nil
	}
	if opts.maskStep {
		return variant(true)
	}
	res, err := variant(false)
	if last := prog.Steps[prog.Output-1]; opts.Packing == plan.Latency && last.Kind == plan.StepLinear && !(res != nil && res.Program.Steps[0].Coeffs) {
		alt, altErr := variant(true)
		if altErr == nil && (err != nil || better(alt.Plan, res.Plan)) {
			return alt, nil
		}
	}
	return res, err
}

// chooseActivations sets the approximation settings of opts to those the
// search chooses, if any, and returns what it chose.
func chooseActivations(g *nn.Graph, cal *calibration, output int, opts *Options) *plan.ActivationChoice {
	c, choice := searchActivations(g, cal, output)
	if c != nil {
		opts.Degrees, opts.Fit, opts.Margin = c.degrees, c.fit, c.margin
	}
	return choice
}

// unmetWarning says that no approximation the search tried met its rule.
func unmetWarning(choice *plan.ActivationChoice) string {
	return fmt.Sprintf("no activation approximation tried kept %s (best: %d of %d held-out rows, largest output error %.3g): calibrate on more rows like the inputs, or set --degrees, --fit and --margin",
		choice.Rule, choice.Kept, choice.HeldOut, choice.MaxOutputError)
}

// setDefaults fills the options left zero with their defaults and checks
// the packing, margin and fit.
func (o *Options) setDefaults() error {
	if o.Packing == "" {
		o.Packing = plan.Latency
	}
	if o.Packing != plan.Latency && o.Packing != plan.Batch {
		return fheserve.Errorf(fheserve.EINVALID, "unknown packing %q (want latency or batch)", o.Packing)
	}
	if o.Sealed && o.Packing == plan.Batch {
		return fheserve.Errorf(fheserve.EUNSUPPORTED, "batch packing cannot be sealed: it multiplies by each weight as a scalar, so sealing needs one ciphertext per weight; use latency packing")
	}
	if o.Sealed {
		// Tiles re-prepare the last linear map for each call's number of
		// samples: sealed weights are sealed once.
		o.NoTiles = true
	}
	if o.Degree == 0 {
		o.Degree = DefaultDegree
	}
	if o.Margin == 0 {
		o.Margin = DefaultMargin
	}
	if o.Margin < 0 || o.Margin > 10 {
		return fheserve.Errorf(fheserve.EINVALID, "interval margin %g is out of range 0..10", o.Margin)
	}
	if math.IsNaN(o.Precision) || math.IsInf(o.Precision, 0) || o.Precision < 0 {
		return fheserve.Errorf(fheserve.EINVALID, "precision %g is not a positive number (the largest output error accepted)", o.Precision)
	}
	if o.Precision != 0 && o.PrecisionBits != 0 {
		return fheserve.Errorf(fheserve.EINVALID, "--precision (an absolute error) and --precision-bits (relative to the output bound) cannot both be given")
	}
	switch o.Keys {
	case "":
		o.Keys = KeysSmall
	case KeysSmall, KeysFast, KeysDerived:
	default:
		return fheserve.Errorf(fheserve.EINVALID, "unknown key choice %q (want %q, %q or %q)", o.Keys, KeysFast, KeysSmall, KeysDerived)
	}
	switch o.Pooling {
	case "", PoolingFuse, PoolingSum:
	default:
		return fheserve.Errorf(fheserve.EINVALID, "unknown pooling %q (want %q or %q)", o.Pooling, PoolingFuse, PoolingSum)
	}
	switch o.Fit {
	case "", FitInterpolation, FitLeastSquares:
		return nil
	}
	return fheserve.Errorf(fheserve.EINVALID, "unknown approximation fit %q (want %q or %q)", o.Fit, FitInterpolation, FitLeastSquares)
}

// cheaper reports whether plan a costs less to evaluate than plan b: a
// smaller ring, then less work (a key switch counted as 16 plaintext
// products), then better (smaller keys, more privacy).
func cheaper(a, b *plan.Plan) bool {
	work := func(p *plan.Plan) int { return 16*p.Ops.Rotations + p.Ops.PtMuls + p.Ops.ConstMuls }
	switch {
	case a.Params.LogN != b.Params.LogN:
		return a.Params.LogN < b.Params.LogN
	case work(a) != work(b):
		return work(a) < work(b)
	}
	return better(a, b)
}

// cloneNodes copies the steps under construction so that fusing one copy
// leaves the other as lowered (fusion replaces matrices, never writes
// into them).
func cloneNodes(nodes []*irNode) []*irNode {
	out := make([]*irNode, len(nodes))
	for i, n := range nodes {
		c := *n
		c.step.In = slices.Clone(n.step.In)
		out[i] = &c
	}
	return out
}

// better reports whether plan a costs the user less than plan b: a smaller
// ring, then smaller keys, then more privacy.
func better(a, b *plan.Plan) bool {
	switch {
	case a.Params.LogN != b.Params.LogN:
		return a.Params.LogN < b.Params.LogN
	case a.Sizes.EvalKeys != b.Sizes.EvalKeys:
		return a.Sizes.EvalKeys < b.Sizes.EvalKeys
	}
	return a.Precision.PrivacyBits > b.Precision.PrivacyBits
}

// splitHead removes a final Sigmoid or Softmax: the client applies it after
// decryption, exactly.
func splitHead(g *nn.Graph) (nodes []*nn.Node, output int, head nn.Head) {
	nodes = append([]*nn.Node(nil), g.Nodes...)
	output = g.Output
	if output == 0 {
		return nodes, output, nn.HeadNone
	}
	n := g.Nodes[output-1]
	uses := 0
	for _, m := range g.Nodes {
		for _, in := range m.Inputs {
			if in == output {
				uses++
			}
		}
	}
	if uses > 0 {
		return nodes, output, nn.HeadNone
	}
	switch op := n.Op.(type) {
	case *nn.Softmax:
		head = nn.HeadSoftmax
	case *nn.Activation:
		if op.Func == nn.ActSigmoid {
			head = nn.HeadSigmoid
		}
	}
	if head != nn.HeadNone {
		nodes[output-1] = nil
		output = n.Inputs[0]
	}
	return nodes, output, head
}

// fuse merges each linear step into the linear step that consumes it when
// it has no other consumer (consecutive linear maps and constants become
// one product, one level), drops dead steps and renumbers.
func fuse(nodes []*irNode, out int, packing string) *plan.Program {
	countUsers(nodes, out)
	for _, n := range nodes {
		s := &n.step
		if s.Kind != plan.StepLinear || s.In[0] == 0 {
			continue
		}
		src := nodes[s.In[0]-1]
		if src.step.Kind != plan.StepLinear || src.users != 1 {
			continue
		}
		fuseLinear(s, &src.step)
		src.dead = true
	}
	countUsers(nodes, out)
	prog := renumber(nodes, out, packing)
	// A step whose output feeds a ciphertext product gets a scale chosen
	// so that the product lands on the default scale.
	for i := range prog.Steps {
		s := &prog.Steps[i]
		if s.Kind == plan.StepSquare || s.Kind == plan.StepMul {
			for _, in := range s.In {
				if in > 0 {
					prog.Steps[in-1].FeedsMul = true
				}
			}
		}
	}
	return prog
}

// countUsers counts the live consumers of each node, the output being one.
func countUsers(nodes []*irNode, out int) {
	for _, n := range nodes {
		n.users = 0
	}
	for _, n := range nodes {
		if n.dead {
			continue
		}
		for _, in := range n.step.In {
			if in > 0 {
				nodes[in-1].users++
			}
		}
	}
	if out > 0 {
		nodes[out-1].users++
	}
}

// fuseLinear makes the linear step s compute itself after src, its only
// input: one product of the two maps, with the bias carried through.
func fuseLinear(s, src *plan.Step) {
	m := plan.MulSparse(s.M, src.M)
	var bias []float64
	if src.Bias != nil {
		bias = s.M.MulVec(src.Bias)
	}
	if s.Bias != nil {
		if bias == nil {
			bias = make([]float64, m.Rows)
		}
		for i := range bias {
			bias[i] += s.Bias[i]
		}
	}
	switch {
	case isDiagonal(src.M):
	case isDiagonal(s.M):
		s.Grid = src.Grid
	default:
		s.Grid = s.Grid.After(src.Grid)
	}
	s.M, s.Bias, s.In = m, bias, []int{src.In[0]}
	if src.Name != s.Name {
		s.Name = src.Name + "+" + s.Name
	}
}

// renumber makes a program of the live steps, numbered in order.
func renumber(nodes []*irNode, out int, packing string) *plan.Program {
	newID := make([]int, len(nodes)+1)
	prog := &plan.Program{Packing: packing}
	for i, n := range nodes {
		if n.dead || n.users == 0 {
			continue
		}
		s := n.step
		for j, in := range s.In {
			s.In[j] = newID[in]
		}
		prog.Steps = append(prog.Steps, s)
		newID[i+1] = len(prog.Steps)
	}
	prog.Output = newID[out]
	return prog
}

// isDiagonal reports whether m is square with entries on its diagonal only.
func isDiagonal(m *plan.Sparse) bool {
	if m.Rows != m.Cols {
		return false
	}
	for r := 0; r < m.Rows; r++ {
		cols, _ := m.Row(r)
		if len(cols) > 1 || (len(cols) == 1 && cols[0] != r) {
			return false
		}
	}
	return true
}

// stepDepth is the number of levels a step consumes.
func stepDepth(s *plan.Step) int {
	switch s.Kind {
	case plan.StepLinear, plan.StepSquare, plan.StepMul, plan.StepMask:
		return 1
	case plan.StepSum:
		return 0
	case plan.StepPoly:
		return plan.PolyDepth(len(s.Poly) - 1)
	}
	return 0
}

type compilation struct {
	g     *nn.Graph
	opts  *Options
	prog  *plan.Program
	head  nn.Head
	acts  []plan.Activation
	warn  []string
	calib *calibration
	// output is the graph value the program computes (the graph output
	// without its head).
	output int
	// maskStep: mask a latency result with a mask step even when its last
	// step is a linear map that could mask its own diagonals.
	maskStep bool
	// choice reports the activation search (nil: the owner's settings or
	// the defaults).
	choice *plan.ActivationChoice
}

func (c *compilation) build() (*plan.Plan, error) {
	coeffN := c.coeffRing()
	c.maskOutput(coeffN)
	depth := c.setLevels()
	p := c.newPlan(depth)

	// The noise model needs every value's calibrated magnitude even when
	// the output bound is forced.
	bound := c.calib.outputBound(c.prog)
	if c.opts.OutputBound != 0 {
		bound = c.opts.OutputBound
	}
	p.Precision.OutputBound = bound

	ps, pr, err := c.searchParams(p, depth, bound, coeffN)
	if err != nil {
		return nil, err
	}
	if err := c.finish(p, ps, pr, coeffN > 0); err != nil {
		return nil, err
	}
	return p, nil
}

// coeffRing is the ring degree a lone linear map on the input needs to
// run in coefficient encoding (its rows fit a ring; the sanitizer then
// keeps only the output coefficients), or 0.
func (c *compilation) coeffRing() int {
	prog := c.prog
	if c.opts.Packing != plan.Latency || c.opts.maskStep || len(prog.Steps) != 1 || prog.Steps[0].Kind != plan.StepLinear || prog.Steps[0].In[0] != 0 {
		return 0
	}
	coeffN := prog.Steps[0].M.Rows * plan.NextPow2(c.g.Input.Size())
	if coeffN > 1<<maxLogN || (c.opts.LogN != 0 && coeffN > 1<<c.opts.LogN) {
		return 0
	}
	return coeffN
}

// maskOutput keeps a result to its declared outputs: in coefficient
// encoding the sanitizer does; otherwise the last linear map of a latency
// result writes its outputs alone, or a last step masks them.
func (c *compilation) maskOutput(coeffN int) {
	prog := c.prog
	switch last := &prog.Steps[prog.Output-1]; {
	case coeffN > 0:
	case c.opts.Packing == plan.Latency && last.Kind == plan.StepLinear && !c.maskStep:
		// The last linear map writes its outputs alone, at no level.
		last.MaskOutput = true
	default:
		prog.Steps = append(prog.Steps, plan.Step{Kind: plan.StepMask, Name: "mask", In: []int{prog.Output}, Length: last.Length})
		prog.Output = len(prog.Steps)
	}
}

// setLevels sets each step's levels in and out, the input at the top,
// and returns the program's depth.
func (c *compilation) setLevels() int {
	prog := c.prog
	depth := make([]int, len(prog.Steps)+1)
	for i := range prog.Steps {
		s := &prog.Steps[i]
		d := 0
		for _, in := range s.In {
			d = max(d, depth[in])
		}
		depth[i+1] = d + c.stepDepth(s)
	}
	D := 0
	for _, d := range depth {
		D = max(D, d)
	}
	level := make([]int, len(prog.Steps)+1)
	level[0] = D
	for i := range prog.Steps {
		s := &prog.Steps[i]
		l := math.MaxInt
		for _, in := range s.In {
			l = min(l, level[in])
		}
		s.LevelIn = l
		s.Level = l - c.stepDepth(s)
		level[i+1] = s.Level
	}
	return D
}

// newPlan starts the plan: what the model and its graph say.
func (c *compilation) newPlan(depth int) *plan.Plan {
	p := &plan.Plan{
		Version:     plan.Version,
		Model:       c.g.Name,
		Packing:     c.opts.Packing,
		InputShape:  append([]int(nil), c.g.Input...),
		OutputShape: append([]int(nil), c.g.ValueShape(c.output)...),
		Depth:       depth,
		Head:        string(c.head),
		Activations: c.acts,
		Warnings:    c.warn,

		ActivationChoice: c.choice,
	}
	if c.head != nn.HeadNone {
		p.OutputShape = append([]int(nil), c.g.OutputShape()...)
	}
	return p
}

// minSlots is the number of slots a latency layout needs: each value
// packed with a power-of-two period (none in coefficient encoding).
func (c *compilation) minSlots(coeffN int) int {
	minSlots := 1
	if c.opts.Packing == plan.Latency && coeffN == 0 {
		for i := range c.prog.Steps {
			minSlots = max(minSlots, plan.NextPow2(c.prog.Steps[i].Length))
		}
		minSlots = max(minSlots, plan.NextPow2(c.g.Input.Size()))
	}
	return minSlots
}

// searchParams chooses the parameters. Privacy and precision both cost
// scale bits: on each ring, smallest first, take the largest secure scale
// and size the flooding; the first ring that meets both wins, at the
// smallest scale that still does.
func (c *compilation) searchParams(p *plan.Plan, depth int, bound float64, coeffN int) (*paramChoice, privacy, error) {
	prog := c.prog
	minSlots := c.minSlots(coeffN)
	maxScale := maxQBits
	if c.opts.PrivacyBits == NoPrivacy {
		maxScale = maxLogScale
	}
	lo, hi := he.MinLogN, maxLogN
	if c.opts.LogN != 0 {
		lo, hi = c.opts.LogN, c.opts.LogN
	}
	last := prog.LastCompute()
	fixedOut := last == prog.Output && prog.Steps[last-1].Kind == plan.StepMask
	var (
		ps, best *paramChoice
		pr, bpr  privacy
		cands    []*paramChoice
	)
	for logN := lo; logN <= hi && ps == nil; logN++ {
		n := 1 << logN
		if (coeffN > 0 && coeffN > n) || (coeffN == 0 && minSlots > n/2) {
			continue
		}
		// One key-switching prime, or two (smaller keys) where the budget
		// still meets the privacy asked for; the smaller keys win.
		for _, pCount := range []int{1, 2} {
			if pCount > 1 && (depth < 1 || !c.needsRotationKeys(coeffN > 0)) {
				break
			}
			cand, err := chooseParams(depth, logN, bound, maxScale, fixedOut, pCount, c.opts.Keys == KeysDerived)
			if err != nil {
				return nil, privacy{}, err
			}
			if cand == nil {
				continue
			}
			cands = append(cands, cand)
			c.setLayout(p, cand, coeffN > 0)
			got := c.sizePrivacy(p, cand)
			if best == nil || got.bits > bpr.bits || (got.bits == bpr.bits && got.heError < bpr.heError) {
				best, bpr = cand, got
			}
			if got.ok && (ps == nil || cand.keyBytes() < ps.keyBytes()) {
				ps, pr = cand, got
			}
		}
	}
	if ps == nil {
		return nil, privacy{}, c.noParams(p, depth, minSlots, best, bpr, cands)
	}
	ps, pr = c.shrinkScale(p, ps, pr, depth, bound, fixedOut, coeffN > 0)
	return ps, pr, nil
}

// shrinkScale lowers the scale of ps while it still meets both privacy
// and precision: every bit of scale is a bit of every prime in the keys
// the user uploads.
func (c *compilation) shrinkScale(p *plan.Plan, ps *paramChoice, pr privacy, depth int, bound float64, fixedOut, coeffs bool) (*paramChoice, privacy) {
	for c.opts.PrivacyBits != NoPrivacy {
		cand, err := chooseParams(depth, ps.spec.LogN, bound, ps.spec.LogDefaultScale-1, fixedOut, ps.pCount, c.opts.Keys == KeysDerived)
		if err != nil || cand == nil {
			break
		}
		c.setLayout(p, cand, coeffs)
		got := c.sizePrivacy(p, cand)
		if !got.ok {
			break
		}
		ps, pr = cand, got
	}
	return ps, pr
}

// noParams says why no ring fits: none holds the depth and slots, or the
// best one falls short of the privacy or precision asked for (cands are
// the parameters tried, the largest scale on each ring).
func (c *compilation) noParams(p *plan.Plan, depth, minSlots int, best *paramChoice, bpr privacy, cands []*paramChoice) error {
	if c.opts.Precision > 0 && len(cands) > 0 {
		return c.precisionRefusal(p, depth, cands)
	}
	if best != nil {
		return c.tradeOff(p, best, bpr)
	}
	if c.opts.LogN != 0 {
		return fheserve.Errorf(fheserve.EINSECURE, "depth %d does not fit ring degree 2^%d at 128-bit security with a scale of at least 2^%d", depth, c.opts.LogN, minLogScale)
	}
	return fheserve.Errorf(fheserve.EUNSUPPORTED, "the model needs depth %d and %d slots, more than any 128-bit secure ring up to 2^%d holds without bootstrapping; use fewer layers or lower-degree activations", depth, minSlots, maxLogN)
}

// finish completes the plan on the parameters chosen: layouts, keys,
// operation counts, precision, sizes and the fingerprint.
func (c *compilation) finish(p *plan.Plan, ps *paramChoice, pr privacy, coeffs bool) error {
	c.setLayout(p, ps, coeffs)
	for i := range c.prog.Steps {
		if s := &c.prog.Steps[i]; s.Kind == plan.StepSum && p.Packing == plan.Latency && s.Stages == nil {
			return fheserve.Errorf(fheserve.EINTERNAL, "step %q: the pooling's windows are not alike in its input's layout", s.Name)
		}
	}
	p.Params = ps.spec
	p.LogQP = ps.logQP
	p.SecurityBound = ps.bound
	if p.Packing == plan.Batch {
		c.chooseLazyRelin(ps)
		pr = c.sizePrivacy(p, ps)
	}
	if p.Input.Tile > 0 {
		if err := c.untiled(p, ps); err != nil {
			return err
		}
	}
	if err := c.countAndKeys(p, ps); err != nil {
		return err
	}
	if err := c.derivation(p, ps); err != nil {
		return err
	}
	if err := c.otherKeys(p, ps); err != nil {
		return err
	}
	c.sealCounts(p)
	p.Precision.ApproxOutputError = c.approxOutputError()
	c.precision(p, ps, pr)
	if err := c.sizes(p, ps); err != nil {
		return err
	}
	for _, a := range c.acts {
		p.Precision.ApproximationError = math.Max(p.Precision.ApproximationError, a.MaxError)
	}
	p.Fingerprint = p.ComputeFingerprint()
	return nil
}

// needsRotationKeys reports whether the program needs rotation keys: a
// second key-switching prime pays where they dominate the upload. A batch
// plan's only key is the relinearization key, small either way, and its
// key switches are few.
func (c *compilation) needsRotationKeys(coeffs bool) bool {
	if c.opts.Packing != plan.Latency || coeffs {
		return false
	}
	for i := range c.prog.Steps {
		if c.prog.Steps[i].Kind == plan.StepLinear {
			return true
		}
	}
	return false
}

// setLayout fills the plan's batch size and input and output layouts for
// parameters ps.
func (c *compilation) setLayout(p *plan.Plan, ps *paramChoice, coeffs bool) {
	prog := c.prog
	slots := 1 << (ps.spec.LogN - 1)
	inLen := c.g.Input.Size()
	outLen := prog.Steps[prog.Output-1].Length
	D := p.Depth
	ls, lo := ps.spec.LogDefaultScale, ps.outLogScale
	switch {
	case p.Packing == plan.Batch:
		p.BatchSize = slots
		p.Input = plan.Layout{Encoding: plan.Slots, Length: inLen, Ciphertexts: inLen, Level: D, LogScale: ls}
		p.Output = plan.Layout{Encoding: plan.Slots, Length: outLen, Ciphertexts: outLen, Level: 0, LogScale: lo}
	case coeffs:
		p.BatchSize = 1
		s := &prog.Steps[0]
		s.Coeffs = true
		s.Pin = plan.NextPow2(inLen)
		pos := make([]int, s.M.Rows)
		for r := range pos {
			pos[r] = r*s.Pin + s.Pin - 1
		}
		p.Input = plan.Layout{Encoding: plan.Coeffs, Length: inLen, Ciphertexts: 1, Level: D, LogScale: ls}
		p.Output = plan.Layout{Encoding: plan.Coeffs, Length: outLen, Positions: pos, Ciphertexts: 1, Level: 0, LogScale: lo}
	default:
		pos, period := c.layout(slots, plan.NextPow2(inLen))
		tile := c.tile(slots, period)
		p.BatchSize = 1
		if tile > 0 {
			p.BatchSize = slots / tile
		}
		p.Input = plan.Layout{Encoding: plan.Slots, Length: inLen, Period: period[0], Tile: tile, Ciphertexts: 1, Level: D, LogScale: ls}
		p.Output = plan.Layout{Encoding: plan.Slots, Length: outLen, Period: period[prog.Output], Positions: pos[prog.Output], Tile: tile, Ciphertexts: 1, Level: 0, LogScale: lo}
	}
}

// tile chooses the tile of a latency layout with the given periods: the
// largest period, when it leaves room for two tiles or more and tiles are
// not turned off (0 otherwise; sealed weights have no tiles: their
// diagonals, encrypted by the owner, cannot be masked per call). Each linear step learns the tile and how
// many leading slots of a tile hold its input: all of them for the
// client's input, the first period for a linear step's output (its
// folds leave partial sums after it), the fewest of its inputs for an
// elementwise step.
func (c *compilation) tile(slots int, period []int) int {
	steps := c.prog.Steps
	for i := range steps {
		steps[i].Tile, steps[i].TileValid = 0, 0
	}
	t := slices.Max(period)
	if c.opts.NoTiles || c.opts.Sealed || 2*t > slots {
		return 0
	}
	valid := make([]int, len(steps)+1)
	valid[0] = t
	for i := range steps {
		s := &steps[i]
		v := t
		for _, in := range s.In {
			v = min(v, valid[in])
		}
		valid[i+1] = v
		if s.Kind == plan.StepLinear {
			s.Tile, s.TileValid = t, v
			valid[i+1] = s.Pout
		}
	}
	return t
}

// untiled fills p.Untiled with what the tiled plan p would cost with one
// sample per call: its linear maps' cyclic diagonals and rotations.
func (c *compilation) untiled(p *plan.Plan, ps *paramChoice) error {
	steps := c.prog.Steps
	saved := make([][2]int, len(steps))
	for i := range steps {
		saved[i] = [2]int{steps[i].Tile, steps[i].TileValid}
		steps[i].Tile, steps[i].TileValid = 0, 0
	}
	defer func() {
		for i := range steps {
			steps[i].Tile, steps[i].TileValid = saved[i][0], saved[i][1]
		}
	}()
	u, err := c.recount(p, ps)
	if err != nil {
		return err
	}
	p.Untiled = &plan.Untiled{
		Rotations:    u.Ops.Rotations,
		Diagonals:    u.Ops.Diagonals,
		RotationKeys: len(u.Rotations),
		EvalKeys:     he.EvalKeysSize(ps.params, he.PlanKeys(u)),
	}
	return nil
}

// recount counts the program's operations and keys afresh into a plan
// with p's packing, parameters and layouts (p itself is left as it is):
// what p would cost with the steps' current choices.
func (c *compilation) recount(p *plan.Plan, ps *paramChoice) (*plan.Plan, error) {
	u := &plan.Plan{Packing: p.Packing, Params: p.Params, Input: p.Input, Output: p.Output}
	if err := c.countAndKeys(u, ps); err != nil {
		return nil, err
	}
	return u, nil
}

// derivation marks a plan compiled with KeysDerived and states the
// derivation's costs.
func (c *compilation) derivation(p *plan.Plan, ps *paramChoice) error {
	if c.opts.Keys != KeysDerived {
		return nil
	}
	switch {
	case c.opts.Sealed:
		return fheserve.Errorf(fheserve.EINVALID, "--keys derived is for plaintext weights; sealed plans use --keys small or fast")
	case len(p.GaloisElements) == 0:
		return nil // nothing to derive (a batch plan's only key is the relinearization key)
	}
	p.Keys = plan.KeysDerived
	d, err := he.DerivationCost(ps.params, he.PlanKeys(p))
	if err != nil {
		return err
	}
	p.Derivation = &d
	return nil
}

// otherKeys fills p.OtherKeys with what a latency plan would cost under
// the other key choice (Options.Keys), leaving the program's choice as
// it is.
func (c *compilation) otherKeys(p *plan.Plan, ps *paramChoice) error {
	if p.Packing != plan.Latency || c.opts.Sealed {
		return nil
	}
	steps := c.prog.Steps
	type choice struct {
		ratio, horner, fold int
		seq                 bool
	}
	saved := make([]choice, len(steps))
	for i, s := range steps {
		saved[i] = choice{s.LogBSGSRatio, s.Horner, s.FoldWidth, s.HornerSeq}
	}
	keys := c.opts.Keys
	other := KeysFast
	if keys != KeysSmall {
		other = KeysSmall
	}
	defer func() {
		c.opts.Keys = keys
		for i := range steps {
			steps[i].LogBSGSRatio, steps[i].Horner, steps[i].FoldWidth, steps[i].HornerSeq = saved[i].ratio, saved[i].horner, saved[i].fold, saved[i].seq
		}
	}()
	c.opts.Keys = other
	u, err := c.recount(p, ps)
	if err != nil {
		return err
	}
	p.OtherKeys = &plan.OtherKeys{
		Keys:         other,
		Rotations:    u.Ops.Rotations,
		RotationKeys: len(u.Rotations),
		EvalKeys:     he.EvalKeysSize(ps.params, he.PlanKeys(u)),
	}
	return nil
}

// tradeOff explains why no ring meets both the privacy and the precision
// asked for, with the best the model reaches.
func (c *compilation) tradeOff(p *plan.Plan, ps *paramChoice, pr privacy) error {
	keys := "?"
	c.setLayout(p, ps, c.prog.Steps[0].Coeffs)
	p.Params = ps.spec
	p.Steps, p.Ops = nil, plan.OpCounts{}
	if err := c.countAndKeys(p, ps); err == nil {
		keys = fmt.Sprintf("%.0f MB", float64(he.EvalKeysSize(ps.params, he.PlanKeys(p)))/1e6)
	}
	reach := fmt.Sprintf("the best is %.1f bits at N=2^%d (scale 2^%d, logQP %.0f, keys %s)", pr.bits, ps.spec.LogN, ps.spec.LogDefaultScale, ps.logQP, keys)
	if pr.flood == 0 {
		reach = fmt.Sprintf("the evaluation noise alone (%.3g at N=2^%d, scale 2^%d) exceeds the precision budget", pr.eval, ps.spec.LogN, ps.spec.LogDefaultScale)
	}
	return fheserve.Errorf(fheserve.EUNSUPPORTED, "no 128-bit secure ring gives %.0f bits of circuit privacy over %d samples at %.0f bits of precision for this model (depth %d, output range %.3g): %s; ask for fewer privacy bits (--privacy-bits), a smaller query budget (--query-budget), or less precision (--precision-bits; each bit less gives two bits of privacy)",
		c.privacyBits(), c.queryBudget(), c.precisionBits(), p.Depth, p.Precision.OutputBound, reach)
}

// layout assigns each value of a latency-mode program its period and the
// positions of its elements. Values keep their natural order unless a
// linear step on images (a convolution, pooling or padding, alone or
// fused) can place its outputs next to their receptive fields in its
// input's layout (plan.Grid.Positions) and that cuts its diagonals at
// least in half, fits the slots, and flows only through elementwise
// steps into linear steps, which absorb any order.
func (c *compilation) layout(slots, inPeriod int) (pos [][]int, period []int) {
	steps := c.prog.Steps
	pos = make([][]int, len(steps)+1)
	period = make([]int, len(steps)+1)
	period[0] = inPeriod
	for i := range steps {
		s := &steps[i]
		in := s.In[0]
		if s.Kind == plan.StepSum {
			// Regular by construction: the input's channels are laid
			// out alike (natural order or plan.Grid.Positions) and the
			// windows are equal; sumLayout fails the compile otherwise.
			s.InPos, s.Pin, s.Pout = pos[in], period[in], period[in]
			s.OutPos, s.Stages, _ = s.SumLayout(s.InPos)
			pos[i+1], period[i+1] = s.OutPos, s.Pout
			continue
		}
		if s.Kind != plan.StepLinear {
			pos[i+1], period[i+1] = pos[in], period[in]
			continue
		}
		s.InPos, s.Pin = pos[in], period[in]
		s.OutPos, s.Pout = nil, plan.NextPow2(s.Length)
		if s.MaskOutput {
			// No folding: a fold leaves partial sums outside the outputs.
			s.Pout = max(s.Pout, s.Pin)
		} else if pref := s.Grid.Positions(s.InPos); pref != nil && c.reordersFreely(i+1) {
			natural := len(s.DiagonalIndices())
			s.OutPos, s.Pout = pref, plan.NextPow2(slices.Max(pref)+1)
			if s.Pout > slots || 2*len(s.DiagonalIndices()) >= natural {
				s.OutPos, s.Pout = nil, plan.NextPow2(s.Length)
			}
			if c.opts.NoTiles && c.opts.Keys != KeysSmall {
				multiplex(s, slots)
			}
		}
		pos[i+1], period[i+1] = s.OutPos, s.Pout
	}
	return pos, period
}

// multiplex moves the output channels of convolution s, laid out by its
// grid or in natural order, onto copies of its input period (plan.Grid.Multiplexed) when
// that makes it cheaper: the map keeps the diagonals of one group of
// channels, but its output period grows, and each doubling costs its
// readers one more fold rotation. Cost is mapCost plus those folds. Only
// without tiles (a wider period leaves fewer tiles) and for fast keys
// (the folds and taps need keys of their own).
func multiplex(s *plan.Step, slots int) {
	base := s.Pout
	bestPos, bestPout, best := s.OutPos, s.Pout, mapCost(s, slots)
	for copies := 2; copies*s.Pin <= slots && copies/2 < s.Grid.OutC; copies *= 2 {
		pos := s.Grid.Multiplexed(s.InPos, s.Pin, copies)
		if pos == nil {
			continue
		}
		s.OutPos, s.Pout = pos, plan.NextPow2(slices.Max(pos)+1)
		cost := mapCost(s, slots) + math.Log2(float64(s.Pout)/float64(base))
		if cost < best {
			bestPos, bestPout, best = pos, s.Pout, cost
		}
	}
	s.OutPos, s.Pout = bestPos, bestPout
}

// mapCost is the time of linear step s by the hoisted baby-step
// giant-step method at its cheapest ratio, in key switches at its level
// (a hoisted baby step hoistedCost of one), its fold rotations included.
func mapCost(s *plan.Step, slots int) float64 {
	best := math.Inf(1)
	for _, o := range bsgsOptions(s.DiagonalIndices(), slots, false) {
		best = min(best, o.switches)
	}
	return best + float64(len(s.FoldRotations()))
}

// reordersFreely reports whether value v reaches only elementwise
// single-input steps, linear steps and the output.
func (c *compilation) reordersFreely(v int) bool {
	for i := range c.prog.Steps {
		s := &c.prog.Steps[i]
		for _, in := range s.In {
			if in != v {
				continue
			}
			switch s.Kind {
			case plan.StepLinear:
			case plan.StepSquare, plan.StepPoly, plan.StepSum:
				if !c.reordersFreely(i + 1) {
					return false
				}
			default:
				return false
			}
		}
	}
	return true
}

// countAndKeys fills the rotation set, Galois elements and the level of
// each key, operation counts and step summaries.
func (c *compilation) countAndKeys(p *plan.Plan, ps *paramChoice) error {
	if p.Packing == plan.Latency {
		chooseRatios(c.prog.Steps, p.Slots(), ps, c.opts.Keys, c.opts.Sealed)
	}
	use := &keyUse{rots: map[int]int{}}
	p.Ops.Ciphertexts = p.Input.Ciphertexts
	p.Ops.ResultCts = p.Output.Ciphertexts
	for i := range c.prog.Steps {
		p.Steps = append(p.Steps, c.countStep(p, &c.prog.Steps[i], use))
	}
	level := map[uint64]int{}
	for r, l := range use.rots {
		if r == 0 {
			continue
		}
		p.Rotations = append(p.Rotations, r)
		keepHighest(level, ps.params.GaloisElement(r), l)
	}
	sort.Ints(p.Rotations)
	p.GaloisElements = galoisElements(ps, p.Rotations)
	p.KeyLevels = &plan.KeyLevels{Galois: make([]int, len(p.GaloisElements)), Relin: use.relin}
	for i, g := range p.GaloisElements {
		p.KeyLevels.Galois[i] = level[g]
	}
	return nil
}

// keyUse records the highest ciphertext level at which the plan switches
// keys with each rotation and with the relinearization key: each key is
// generated at that level (he.PlanKeys).
type keyUse struct {
	rots  map[int]int
	relin int
}

func (k *keyUse) rotate(level int, rots ...int) {
	for _, r := range rots {
		keepHighest(k.rots, r, level)
	}
}

// keepHighest sets m[key] to level unless m holds a higher level for it: the
// level a key is generated at is the highest it is used at.
func keepHighest[K comparable](m map[K]int, key K, level int) {
	if cur, ok := m[key]; !ok || level > cur {
		m[key] = level
	}
}

// countStep adds the operations of step s to the plan's counts and its
// key uses to use, and describes the step.
func (c *compilation) countStep(p *plan.Plan, s *plan.Step, use *keyUse) plan.StepInfo {
	ops := &p.Ops
	info := plan.StepInfo{Kind: s.Kind, Name: s.Name, LevelIn: s.LevelIn, LevelOut: s.Level, OutLength: s.Length}
	if in := s.In[0]; in == 0 {
		info.InLength = c.g.Input.Size()
	} else {
		info.InLength = c.prog.Steps[in-1].Length
	}
	cts := 1
	if p.Packing == plan.Batch {
		cts = s.Length
	}
	switch s.Kind {
	case plan.StepLinear:
		ops.Rescales += cts
		switch {
		case p.Packing == plan.Batch:
			ops.ConstMuls += s.M.NNZ()
			ops.Additions += s.M.NNZ()
		case s.Coeffs:
			ops.CoeffMuls++
		default:
			countDiagonals(s, p.Slots(), ops, use, &info)
		}
	case plan.StepSquare, plan.StepMul:
		ops.CtMuls += cts
		ops.Rescales += cts
		p.Relin = true
		use.relin = max(use.relin, s.LevelIn)
	case plan.StepAdd:
		ops.Additions += cts
	case plan.StepSum:
		if p.Packing == plan.Batch {
			ops.Additions += s.M.NNZ() - s.M.Rows
			break
		}
		rots := stepRotations(s, p.Slots())
		use.rotate(s.LevelIn, rots...)
		info.Rotations = len(rots)
		ops.Rotations += len(rots)
		ops.BabySteps += len(rots)
		ops.Additions += len(rots)
	case plan.StepPoly:
		deg := len(s.Poly) - 1
		info.Degree = deg
		ops.PolyEvals += cts
		ops.PolyCtMuls += cts * polyCtMuls(deg)
		ops.Rescales += cts * plan.PolyDepth(deg)
		if deg >= 2 {
			p.Relin = true
			use.relin = max(use.relin, s.LevelIn)
		}
	}
	return info
}

// countDiagonals counts the diagonals, products and rotations of a linear
// map in slots, at the ratio chooseRatios chose. Baby and
// giant steps switch keys at the step's input level, the folds after its
// rescale, one level lower.
func countDiagonals(s *plan.Step, slots int, ops *plan.OpCounts, use *keyUse, info *plan.StepInfo) {
	idx := s.DiagonalIndices()
	folds := s.FoldRotations()
	info.Diagonals = len(idx)
	if s.Horner > 0 {
		h := server.Horner(idx, slots, s.Horner, s.HornerSeq)
		use.rotate(s.LevelIn, h.Rotations(slots)...)
		info.Horner, info.HornerSeq = s.Horner, s.HornerSeq
		info.Rotations = h.KeySwitches() + len(folds)
		ops.SerialBabySteps += len(h.BabyBy)
		ops.GiantSteps += h.Pos + h.Neg
	} else {
		babies, giants := server.BSGS(idx, slots, s.LogBSGSRatio)
		use.rotate(s.LevelIn, slices.Concat(babies, giants)...)
		info.Rotations = len(babies) + len(giants) + len(folds)
		ops.BabySteps += len(babies)
		ops.GiantSteps += len(giants)
	}
	use.rotate(s.LevelIn-1, folds...)
	ops.Diagonals += len(idx)
	ops.PtMuls += len(idx)
	ops.FoldRotations += len(folds)
	ops.Rotations += info.Rotations
	ops.Additions += len(idx) + len(folds)
}

// polyCtMuls estimates the ciphertext products of Lattigo's baby-step
// giant-step polynomial evaluation of the given degree.
func polyCtMuls(deg int) int {
	if deg < 2 {
		return 0
	}
	logDeg := int(math.Ceil(math.Log2(float64(deg + 1))))
	logSplit := (logDeg >> 1)
	if logSplit < 1 {
		logSplit = 1
	}
	giant := logDeg - logSplit
	return (1 << logSplit) + giant + (deg >> logSplit)
}

func fmtShape(s []int) string { return fmt.Sprint(s) }

// stepRotations returns the rotations a linear step (at the choices
// chooseRatios made) or a pooling switches keys with, folds included.
func stepRotations(s *plan.Step, slots int) []int {
	var rots []int
	switch s.Kind {
	case plan.StepSum:
		for _, stage := range s.Stages {
			for _, r := range stage {
				if r%slots != 0 {
					rots = append(rots, (r%slots+slots)%slots)
				}
			}
		}
		return rots
	case plan.StepLinear:
	default:
		return nil
	}
	idx := s.DiagonalIndices()
	if s.Horner > 0 {
		rots = server.Horner(idx, slots, s.Horner, s.HornerSeq).Rotations(slots)
	} else {
		babies, giants := server.BSGS(idx, slots, s.LogBSGSRatio)
		rots = slices.Concat(babies, giants)
	}
	return append(rots, s.FoldRotations()...)
}
