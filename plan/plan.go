// Package plan holds the compiled form of a model: the public Plan, which is
// the contract between a model user's client and the server (parameters,
// packing, layouts, rotation keys, precision), and the private Program,
// which holds the weights and never leaves the server.
//
// The package has no dependency on the HE library, so the client half
// (including a WebAssembly build) can read plans.
package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/bits"

	"github.com/fheserve/fheserve"
)

// Version of the plan format.
const Version = 1

// Packing modes.
const (
	Latency = "latency" // one sample per call (or one per tile), a vector per ciphertext
	Batch   = "batch"   // sample i in slot i, one ciphertext per feature
)

// Encodings of a layout.
const (
	Slots  = "slots"  // values in CKKS slots
	Coeffs = "coeffs" // values as polynomial coefficients
)

// Params are the CKKS parameters of a plan: ring degree 2^LogN, the bit
// sizes of the ciphertext primes (LogQ, q_0 first) and of the key-switching
// primes (LogP), and the default scale 2^LogDefaultScale. Like Lattigo's
// ParametersLiteral it is unchecked input; he.NewParameters checks it and
// returns the parameters. It lives here so that plan does not import the
// HE library.
type Params struct {
	LogN            int   `json:"log_n"`
	LogQ            []int `json:"log_q"`
	LogP            []int `json:"log_p"`
	LogDefaultScale int   `json:"log_default_scale"`
}

// Layout says how a tensor is laid out in ciphertexts.
//
// Slots, latency packing: one ciphertext; element i of the flattened tensor
// is in every slot j with j mod Period == Positions[i] (or i when Positions
// is nil): the vector repeats across all slots. Tiled (Tile > 0): the
// slots are cut into tiles of Tile slots and tile t holds sample t of the
// call, its vector repeated across the tile (the input) or in the tile's
// first period (the output: tile t's output i is in slot
// t*Tile + Positions[i]); the plan's BatchSize is the number of tiles.
// Slots, batch packing: Length ciphertexts; ciphertext i holds
// element i of sample j in slot j. Coeffs: one ciphertext; element i is
// coefficient Positions[i] (or i when Positions is nil).
type Layout struct {
	Encoding  string `json:"encoding"`
	Length    int    `json:"length"`
	Period    int    `json:"period,omitempty"`
	Positions []int  `json:"positions,omitempty"`
	Tile      int    `json:"tile,omitempty"`
	// PerCiphertext (latency, slots, untiled output): the outputs are
	// split over Ciphertexts, PerCiphertext each: output i is in
	// ciphertext i / PerCiphertext at slot Positions[i % PerCiphertext]
	// (a gallery of more templates than a ciphertext has slots).
	PerCiphertext int `json:"per_ciphertext,omitempty"`
	Ciphertexts   int `json:"ciphertexts"`
	Level         int `json:"level"`
	LogScale      int `json:"log_scale"`
}

// Activation reports how one non-polynomial activation is approximated.
type Activation struct {
	Node     string     `json:"node"`
	Func     string     `json:"func"`
	Interval [2]float64 `json:"interval"`
	Source   string     `json:"source"` // "calibration" or "default"
	Degree   int        `json:"degree"`
	Depth    int        `json:"depth"`
	MaxError float64    `json:"max_error"` // on calibration data (or the interval grid)
	Clipped  float64    `json:"clipped"`   // fraction of calibration inputs outside the interval
	// Fit is "least-squares" for a least-squares fit to the calibration
	// inputs; empty for interpolation at the Chebyshev nodes.
	Fit       string    `json:"fit,omitempty"`
	Basis     string    `json:"basis"`
	Coeffs    []float64 `json:"-"`
	PreScale  float64   `json:"-"`
	PreOffset float64   `json:"-"`
}

// ActivationChoice reports how the compiler chose the activation
// approximations (degree per activation, fit, interval margin) from the
// calibration data when the owner set none: each candidate was fitted on
// the first rows and judged by the network's outputs on HeldOut others.
type ActivationChoice struct {
	HeldOut int    `json:"held_out"` // calibration rows held out to judge
	Tried   int    `json:"tried"`    // candidate settings judged
	Rule    string `json:"rule"`     // what a candidate had to keep
	// Kept is the number of held-out rows whose class the chosen setting
	// keeps (classifiers).
	Kept int `json:"kept"`
	// Unsafe is the number of held-out rows where an output moved by half
	// the gap between the row's two largest outputs (its class could
	// change on a similar input).
	Unsafe         int     `json:"unsafe"`
	MaxOutputError float64 `json:"max_output_error"` // on the held-out rows
	// Met is false when no candidate met Rule: the best one is used,
	// and the plan warns.
	Met bool `json:"met"`
}

// Precision is what the user gets back.
type Precision struct {
	// OutputError is the expected maximum absolute error of each output
	// value against the exact model: the encryption's (HE noise,
	// flooding and result compression) plus ApproxOutputError.
	OutputError float64 `json:"output_error"`
	// ApproximationError is the largest error of an activation
	// approximation on the calibration data (0 when all are exact).
	ApproximationError float64 `json:"approximation_error"`
	// FloodStd is the std of the flooding noise in coefficient units.
	FloodStd float64 `json:"flood_std"`
	// FloodBits is log2(FloodStd / evaluation noise bound): how far the
	// flooding noise drowns the weight-dependent evaluation noise.
	FloodBits float64 `json:"flood_bits"`
	// OutputBound is the largest output magnitude the parameters carry.
	OutputBound float64 `json:"output_bound"`
	// PrivacyBits is the circuit-privacy level reached: over QueryBudget
	// samples, the statistical distance between a user's view of the
	// results and one simulated from the outputs alone is at most
	// 2^(-PrivacyBits/2). 0 when results are not flooded.
	PrivacyBits float64 `json:"privacy_bits"`
	// QueryBudget is the number of samples the privacy level assumes.
	QueryBudget int `json:"query_budget"`
	// ApproxOutputError is the largest difference, over the calibration
	// data, between the model's outputs and the outputs with its
	// activations approximated: the approximation error propagated
	// through the network (0 when all activations are exact).
	ApproxOutputError float64 `json:"approx_output_error"`
	// Asked is the precision the owner asked for as an absolute error
	// (compiler.Options.Precision): OutputError is at most Asked. 0 when
	// it was asked relative to OutputBound, in bits.
	Asked float64 `json:"asked,omitempty"`
}

// Sizes are encoded sizes in bytes.
type Sizes struct {
	Upload     int `json:"upload"`      // one call's encrypted input (seeded)
	Result     int `json:"result"`      // one call's encrypted output
	PublicKey  int `json:"public_key"`  // the public key
	EvalKeys   int `json:"eval_keys"`   // relinearization + Galois keys (seeded)
	GaloisKeys int `json:"galois_keys"` // number of Galois keys
	// SealedWeights is the size of a sealed model's weights for one key
	// set (he.SealedSize): every diagonal, weight polynomial and bias as
	// a full ciphertext, since a public-key encryption has no seed.
	SealedWeights int `json:"sealed_weights,omitempty"`
}

// OpCounts counts homomorphic operations for one call.
type OpCounts struct {
	Rotations     int `json:"rotations"`      // key switches for rotations (hoisted ones included)
	PtMuls        int `json:"pt_muls"`        // ciphertext x plaintext (vector) products
	ConstMuls     int `json:"const_muls"`     // ciphertext x scalar products
	CtMuls        int `json:"ct_muls"`        // ciphertext x ciphertext products with relinearization
	Rescales      int `json:"rescales"`       // rescalings
	Additions     int `json:"additions"`      // ciphertext additions
	PolyEvals     int `json:"poly_evals"`     // polynomial evaluations
	PolyCtMuls    int `json:"poly_ct_muls"`   // ct x ct products inside polynomial evaluations
	CoeffMuls     int `json:"coeff_muls"`     // coefficient-encoded plaintext products
	Ciphertexts   int `json:"ciphertexts"`    // input ciphertexts
	ResultCts     int `json:"result_cts"`     // output ciphertexts
	Diagonals     int `json:"diagonals"`      // plaintext diagonals stored
	BabySteps     int `json:"baby_steps"`     // hoisted rotations
	GiantSteps    int `json:"giant_steps"`    // non-hoisted rotations inside linear maps
	FoldRotations int `json:"fold_rotations"` // rotations that sum blocks after a linear map
	// SerialBabySteps: baby steps of Horner maps (Step.Horner), each a
	// full key switch (counted in Rotations, not in BabySteps).
	SerialBabySteps int `json:"serial_baby_steps,omitempty"`
	// Sealed plans: ciphertext x ciphertext products by sealed weights
	// (the linear maps' products, counted in neither PtMuls nor CtMuls)
	// and the relinearizations of their sums (one per giant step).
	SealedMuls   int `json:"sealed_muls,omitempty"`
	SealedRelins int `json:"sealed_relins,omitempty"`
}

// Untiled is what a tiled latency plan would cost with one sample per
// call: its linear maps then read cyclically across copies of the
// input, with fewer diagonals and rotations.
type Untiled struct {
	Rotations    int `json:"rotations"`     // per call
	Diagonals    int `json:"diagonals"`     // plaintext diagonals
	RotationKeys int `json:"rotation_keys"` // Galois keys
	EvalKeys     int `json:"eval_keys"`     // bytes (seeded), as Sizes.EvalKeys
}

// KeysDerived is Plan.Keys of a plan whose Galois keys the server derives
// from master keys of rotations by powers of two (he.PlanDerivation).
const KeysDerived = "derived"

// Derivation is the cost of deriving a plan's Galois keys on the server,
// once per key set: the master keys uploaded instead (their bytes are in
// Sizes.EvalKeys), the key switches the derivation runs over the master
// parameters, and the bytes of the derived keys it holds in memory
// (expanded: both parts of every row).
type Derivation struct {
	MasterKeys   int `json:"master_keys"`
	MasterBits   int `json:"master_bits"` // bits of the extra special prime of the master keys
	KeySwitches  int `json:"key_switches"`
	DerivedBytes int `json:"derived_bytes"`
}

// OtherKeys is what a latency plan would cost under the other key choice
// (compiler.Options.Keys: "small", linear maps by Horner giant steps with
// few keys, or "fast", the hoisted baby-step giant-step method).
type OtherKeys struct {
	Keys         string `json:"keys"`          // the other choice
	Rotations    int    `json:"rotations"`     // per call
	RotationKeys int    `json:"rotation_keys"` // Galois keys
	EvalKeys     int    `json:"eval_keys"`     // bytes (seeded), as Sizes.EvalKeys
}

// StepInfo is the public summary of one program step.
type StepInfo struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	LevelIn   int    `json:"level_in"`
	LevelOut  int    `json:"level_out"`
	InLength  int    `json:"in_length"`
	OutLength int    `json:"out_length"`
	Diagonals int    `json:"diagonals,omitempty"`
	Rotations int    `json:"rotations,omitempty"`
	// Horner and HornerSeq: how a linear map in slots is evaluated
	// (Step.Horner, Step.HornerSeq); the server must use the keys the
	// plan lists.
	Horner    int  `json:"horner,omitempty"`
	HornerSeq bool `json:"horner_seq,omitempty"`
	Degree    int  `json:"degree,omitempty"`
}

// KeyLevels give the level of each evaluation key: the highest level of
// a ciphertext the plan switches with it. A key at level l switches
// ciphertexts at levels 0..l; it has ceil((l+1)/|P|) decomposition rows
// over l+1 primes of Q and the |P| special primes, so a key used only
// after the first layers is a fraction of a top-level one. Plans compiled
// before levels have none: every key is at the top level.
type KeyLevels struct {
	Galois []int `json:"galois"` // aligned with Plan.GaloisElements
	Relin  int   `json:"relin"`  // when Plan.Relin
}

// Plan is the public, user-visible compilation result of a model.
type Plan struct {
	Version        int          `json:"version"`
	Model          string       `json:"model"`
	Packing        string       `json:"packing"`
	Params         Params       `json:"params"`
	LogQP          float64      `json:"log_qp"`
	SecurityBound  int          `json:"security_bound"`
	InputShape     []int        `json:"input_shape"`
	OutputShape    []int        `json:"output_shape"`
	BatchSize      int          `json:"batch_size"`
	Input          Layout       `json:"input"`
	Output         Layout       `json:"output"`
	Rotations      []int        `json:"rotations"`
	GaloisElements []uint64     `json:"galois_elements"`
	Relin          bool         `json:"relin"`
	Depth          int          `json:"depth"`
	Head           string       `json:"head"`
	ResultBits     int          `json:"result_bits"`
	Activations    []Activation `json:"activations"`
	// ActivationChoice is set when the compiler chose the approximations.
	ActivationChoice *ActivationChoice `json:"activation_choice,omitempty"`
	KeyLevels        *KeyLevels        `json:"key_levels,omitempty"` // nil: every key at the top level
	// Keys is KeysDerived when the user uploads master keys and the server
	// derives the Galois keys from them (Derivation says at what cost);
	// empty when the user uploads the Galois keys themselves.
	Keys       string      `json:"keys,omitempty"`
	Derivation *Derivation `json:"derivation,omitempty"`
	Precision  Precision   `json:"precision"`
	Sizes      Sizes       `json:"sizes"`
	Ops        OpCounts    `json:"ops"`
	Steps      []StepInfo  `json:"steps"`
	// Untiled is set on a tiled latency plan (Input.Tile > 0, BatchSize
	// samples per call): the costs of the same plan untiled.
	Untiled *Untiled `json:"untiled,omitempty"`
	// OtherKeys (latency, not sealed): the costs of the same plan under
	// the other key choice.
	OtherKeys   *OtherKeys `json:"other_keys,omitempty"`
	Warnings    []string   `json:"warnings,omitempty"`
	Fingerprint string     `json:"fingerprint"`

	// Sealed: the weights reach the server only encrypted under each
	// user's public key (he/seal); the linear maps multiply ciphertexts.
	Sealed bool `json:"sealed,omitempty"`

	// Decision is set on a gallery plan: its outputs are match decisions
	// (or, by the owner's explicit choice, scores), what they mean and
	// the margin inside which a decision may be wrong (decision.go).
	Decision *Decision `json:"decision,omitempty"`
}

// ComputeFingerprint returns the hex SHA-256 of the plan's canonical JSON
// with the Fingerprint field empty.
func (p *Plan) ComputeFingerprint() string {
	c := *p
	c.Fingerprint = ""
	b, err := json.Marshal(&c)
	if err != nil {
		panic(err) // a Plan always marshals
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Slots is the number of CKKS slots of the plan's ring.
func (p *Plan) Slots() int { return 1 << (p.Params.LogN - 1) }

// InputSize is the number of elements of one sample's input.
func (p *Plan) InputSize() int { return prod(p.InputShape) }

// OutputSize is the number of elements of one sample's output.
func (p *Plan) OutputSize() int { return prod(p.OutputShape) }

func prod(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// Validate checks the internal consistency of a plan received from elsewhere.
func (p *Plan) Validate() error {
	switch {
	case p.Version != Version:
		return fheserve.Errorf(fheserve.EINVALID, "plan version %d is not supported (want %d)", p.Version, Version)
	case p.Packing != Latency && p.Packing != Batch:
		return fheserve.Errorf(fheserve.EINVALID, "plan packing %q is not supported", p.Packing)
	case p.Params.LogN < 12 || p.Params.LogN > 17:
		return fheserve.Errorf(fheserve.EINVALID, "plan ring degree 2^%d is out of range", p.Params.LogN)
	case p.BatchSize < 1 || p.BatchSize > p.Slots():
		return fheserve.Errorf(fheserve.EINVALID, "plan batch size %d is out of range", p.BatchSize)
	case p.Input.Ciphertexts < 1 || p.Output.Ciphertexts < 1:
		return fheserve.Errorf(fheserve.EINVALID, "plan has no input or output ciphertexts")
	case p.Packing == Latency && !p.validTiles():
		return fheserve.Errorf(fheserve.EINVALID, "plan tiles do not fit its slots")
	case p.Output.PerCiphertext != 0 && !p.validSplit():
		return fheserve.Errorf(fheserve.EINVALID, "plan output split over %d ciphertexts of %d does not fit its %d outputs", p.Output.Ciphertexts, p.Output.PerCiphertext, p.Output.Length)
	}
	if err := p.validateKeyLevels(); err != nil {
		return err
	}
	if err := p.validateDecision(); err != nil {
		return err
	}
	if p.Fingerprint != p.ComputeFingerprint() {
		return fheserve.Errorf(fheserve.EINVALID, "plan fingerprint does not match its contents")
	}
	return nil
}

func (p *Plan) validateKeyLevels() error {
	k := p.KeyLevels
	if k == nil {
		return nil
	}
	if len(k.Galois) != len(p.GaloisElements) {
		return fheserve.Errorf(fheserve.EINVALID, "plan has %d key levels for %d Galois elements", len(k.Galois), len(p.GaloisElements))
	}
	top := p.MaxLevel()
	for _, l := range append([]int{k.Relin}, k.Galois...) {
		if l < 0 || l > top {
			return fheserve.Errorf(fheserve.EINVALID, "plan key level %d is outside 0..%d", l, top)
		}
	}
	return nil
}

// MaxLevel is the top level of the plan's parameters.
func (p *Plan) MaxLevel() int { return len(p.Params.LogQ) - 1 }

// GaloisLevels returns the level of the key of each of GaloisElements.
func (p *Plan) GaloisLevels() []int {
	out := make([]int, len(p.GaloisElements))
	for i := range out {
		out[i] = p.MaxLevel()
		if p.KeyLevels != nil && i < len(p.KeyLevels.Galois) {
			out[i] = p.KeyLevels.Galois[i]
		}
	}
	return out
}

// RelinLevel returns the level of the relinearization key.
func (p *Plan) RelinLevel() int {
	if p.KeyLevels != nil {
		return p.KeyLevels.Relin
	}
	return p.MaxLevel()
}

// validTiles reports whether a latency plan's tiles (or its single
// window) hold its batch size of samples, their inputs and their outputs
// inside the slots.
func (p *Plan) validTiles() bool {
	in, out := p.Input, p.Output
	if in.Tile == 0 {
		return p.BatchSize == 1 && out.Tile == 0
	}
	if out.Tile != in.Tile || in.Period < 1 || in.Tile%in.Period != 0 || in.Period < p.InputSize() || in.Tile*p.BatchSize > p.Slots() {
		return false
	}
	for i := 0; i < out.Length; i++ {
		if q := at(out.Positions, i); q < 0 || q >= out.Tile {
			return false
		}
	}
	return out.Length == p.OutputSize()
}

// validSplit checks an output split over ciphertexts (PerCiphertext).
func (p *Plan) validSplit() bool {
	o := p.Output
	if p.Packing != Latency || o.Encoding != Slots || o.Tile != 0 || o.PerCiphertext < 1 || o.PerCiphertext > p.Slots() ||
		o.Ciphertexts != (o.Length+o.PerCiphertext-1)/o.PerCiphertext || len(o.Positions) > o.PerCiphertext {
		return false
	}
	for _, q := range o.Positions {
		if q < 0 || q >= p.Slots() {
			return false
		}
	}
	return true
}

// EncodeInput lays out n samples (row-major, each InputSize long) as the
// vectors (slots or coefficients) of the input ciphertexts of one call.
func (p *Plan) EncodeInput(x []float64, n int) ([][]float64, error) {
	size := p.InputSize()
	if len(x) != n*size {
		return nil, fheserve.Errorf(fheserve.EINVALID, "input has %d values, want %d samples of %d", len(x), n, size)
	}
	if n < 1 || n > p.BatchSize {
		return nil, fheserve.Errorf(fheserve.EINVALID, "%d samples in one call, the plan takes 1 to %d", n, p.BatchSize)
	}
	slots := p.Slots()
	in := p.Input
	switch {
	case p.Packing == Batch:
		out := make([][]float64, size)
		for i := range out {
			v := make([]float64, slots)
			for j := 0; j < n; j++ {
				v[j] = x[j*size+i]
			}
			out[i] = v
		}
		return out, nil
	case in.Encoding == Coeffs:
		v := make([]float64, 2*slots)
		copy(v, x)
		return [][]float64{v}, nil
	default:
		// Sample t fills tile t, which is every slot when untiled; the
		// tiles of samples the call does not hold stay zero.
		tile := in.Tile
		if tile == 0 {
			tile = slots
		}
		v := make([]float64, slots)
		for t := 0; t < n; t++ {
			for j := t * tile; j < (t+1)*tile; j += in.Period {
				copy(v[j:], x[t*size:(t+1)*size])
			}
		}
		return [][]float64{v}, nil
	}
}

// DecodeOutput extracts n samples of output (row-major) from the decrypted
// vectors of one call's result and applies the client-side head.
func (p *Plan) DecodeOutput(vecs [][]float64, n int) ([]float64, error) {
	out, err := p.DecodeRaw(vecs, n)
	if err != nil {
		return nil, err
	}
	ApplyHead(p.Head, out, p.OutputSize())
	return out, nil
}

// DecodeRaw is DecodeOutput without the head: the values the server
// computed, which OutOfBound checks.
func (p *Plan) DecodeRaw(vecs [][]float64, n int) ([]float64, error) {
	size := p.OutputSize()
	out := make([]float64, n*size)
	o := p.Output
	if len(vecs) != o.Ciphertexts {
		return nil, fheserve.Errorf(fheserve.EINVALID, "result has %d ciphertexts, want %d", len(vecs), o.Ciphertexts)
	}
	switch {
	case p.Packing == Batch:
		for i := 0; i < size; i++ {
			for j := 0; j < n; j++ {
				out[j*size+i] = vecs[i][j]
			}
		}
	case o.Encoding == Coeffs:
		for i := 0; i < size; i++ {
			pos := i
			if o.Positions != nil {
				pos = o.Positions[i]
			}
			out[i] = vecs[0][pos]
		}
	case o.PerCiphertext > 0:
		for i := 0; i < size; i++ {
			c, slot := o.Slot(i)
			out[i] = vecs[c][slot]
		}
	default:
		for t := 0; t < n; t++ {
			for i := 0; i < size; i++ {
				out[t*size+i] = vecs[0][t*o.Tile+at(o.Positions, i)]
			}
		}
	}
	return out, nil
}

// Slot is where output i of a latency layout in slots is: its ciphertext
// and slot (untiled; see PerCiphertext).
func (o *Layout) Slot(i int) (ct, slot int) {
	if o.PerCiphertext > 0 {
		return i / o.PerCiphertext, at(o.Positions, i%o.PerCiphertext)
	}
	return 0, at(o.Positions, i)
}

// ApplyHead applies a client-side output head to each sample of out.
func ApplyHead(head string, out []float64, size int) {
	switch head {
	case "sigmoid":
		for i, v := range out {
			out[i] = sigmoid(v)
		}
	case "softmax":
		for s := 0; s+size <= len(out); s += size {
			softmax(out[s : s+size])
		}
	}
}

// NextPow2 returns the smallest power of two >= n (1 for n <= 1).
func NextPow2(n int) int {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}

// String gives a short description for messages.
func (p *Plan) String() string {
	return fmt.Sprintf("%s plan for %q: logN=%d depth=%d rotations=%d", p.Packing, p.Model, p.Params.LogN, p.Depth, len(p.Rotations))
}
