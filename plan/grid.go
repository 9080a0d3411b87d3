package plan

// Grid describes a linear map on images: its input is InC channels of
// H x W values, its output OutC channels of OH x OW (both channel-major),
// and output (o, y, x) reads the input near the point (y*SH+OffH,
// x*SW+OffW), the corner of its receptive field (which may lie in the
// padding). A depthwise map (pooling, padding) reads only its own channel;
// any other reads every channel (a convolution).
type Grid struct {
	InC, H, W    int
	OutC, OH, OW int
	SH, SW       int
	OffH, OffW   int
	Depthwise    bool
}

// After returns the grid of g applied to the output of src (nil when
// src's output is not g's input): strides multiply and corners compose,
// so a pooling followed by a convolution is one convolution of a larger
// stride.
func (g *Grid) After(src *Grid) *Grid {
	if g == nil || src == nil || src.OutC != g.InC || src.OH != g.H || src.OW != g.W {
		return nil
	}
	return &Grid{
		InC: src.InC, H: src.H, W: src.W,
		OutC: g.OutC, OH: g.OH, OW: g.OW,
		SH: g.SH * src.SH, SW: g.SW * src.SW,
		OffH: g.OffH*src.SH + src.OffH, OffW: g.OffW*src.SW + src.OffW,
		Depthwise: g.Depthwise && src.Depthwise,
	}
}

// Positions places the outputs of a map with grid g whose input element
// (c, y, x) sits at inPos[(c*H+y)*W+x] (at that index when inPos is nil):
// output (o, y, x) goes where its receptive field's corner would be in
// channel 0, shifted per output channel to the first offset where no
// output of another channel sits (a depthwise map's channel o starts
// from where its input channel is). Where the input's channels are
// images laid out alike (the same row and column steps), entry
// ((o,y,x), (c,y',x')) then lies on a diagonal that depends on c, o and
// the tap only, not on y and x; strided outputs leave gaps that later
// channels fill. Nil when the input is not laid out alike, or when two
// outputs of a channel would share a place (or g is nil).
func (g *Grid) Positions(inPos []int) []int {
	if g == nil {
		return nil
	}
	start, dy, dx, ok := g.inputSteps(inPos)
	if !ok || g.OH*g.OW == 0 {
		return nil
	}
	base := make([]int, g.OH*g.OW)
	lo, hi := 0, 0
	for y := 0; y < g.OH; y++ {
		for x := 0; x < g.OW; x++ {
			a := (y*g.SH+g.OffH)*dy + (x*g.SW+g.OffW)*dx
			base[y*g.OW+x] = a
			lo, hi = min(lo, a), max(hi, a)
		}
	}
	used := make([]bool, hi-lo+1)
	for i := range base {
		base[i] -= lo
		if used[base[i]] {
			return nil // the input's rows overlap at this stride and padding
		}
		used[base[i]] = true
	}
	clear(used)
	free := func(off int) bool {
		for _, a := range base {
			if a+off < len(used) && used[a+off] {
				return false
			}
		}
		return true
	}
	pos := make([]int, 0, g.OutC*len(base))
	for o := 0; o < g.OutC; o++ {
		off := 0
		if g.Depthwise {
			off = max(0, start[o]-start[0])
		}
		for !free(off) {
			off++
		}
		if n := hi - lo + off + 1; n > len(used) {
			used = append(used, make([]bool, n-len(used))...)
		}
		for _, a := range base {
			used[a+off] = true
			pos = append(pos, a+off)
		}
	}
	return pos
}

// inputSteps returns, when every input channel c sits at start[c] + y*dy +
// x*dx, the channels' starts and the row and column steps.
func (g *Grid) inputSteps(inPos []int) (start []int, dy, dx int, ok bool) {
	if g.H*g.W == 0 || len(inPos) != 0 && len(inPos) != g.InC*g.H*g.W {
		return nil, 0, 0, false
	}
	p := func(c, y, x int) int { return at(inPos, (c*g.H+y)*g.W+x) }
	if g.H > 1 {
		dy = p(0, 1, 0) - p(0, 0, 0)
	}
	if g.W > 1 {
		dx = p(0, 0, 1) - p(0, 0, 0)
	}
	start = make([]int, g.InC)
	for c := range start {
		start[c] = p(c, 0, 0)
		for y := 0; y < g.H; y++ {
			for x := 0; x < g.W; x++ {
				if p(c, y, x) != start[c]+y*dy+x*dx {
					return nil, 0, 0, false
				}
			}
		}
	}
	return start, dy, dx, true
}

// Multiplexed places the outputs of a convolution (not depthwise) with
// grid g over copies copies of its input period pin: output channel o
// goes to copy o mod copies, at the place Positions gives channel
// o / copies of the same map with OutC / copies channels (rounded up).
// Since the input repeats every pin slots, the copy an output sits in
// does not change which input slot it reads at each tap: the map has the
// diagonals of the narrower one, a tap's rotation serves every channel
// of a group (the packing of GAZELLE's per-tap convolutions and Lee et
// al.'s parallel multiplexing), and the output period grows to
// copies x pin. Nil when the narrower map's outputs do not fit in pin
// slots, when copies is not a power of two from 2 to OutC rounded up, or
// as Positions.
func (g *Grid) Multiplexed(inPos []int, pin, copies int) []int {
	if g == nil || g.Depthwise || copies < 2 || copies&(copies-1) != 0 || copies/2 >= g.OutC {
		return nil
	}
	narrow := *g
	narrow.OutC = (g.OutC + copies - 1) / copies
	base := narrow.Positions(inPos)
	if base == nil {
		return nil
	}
	hw := g.OH * g.OW
	pos := make([]int, g.OutC*hw)
	for o := 0; o < g.OutC; o++ {
		for j := 0; j < hw; j++ {
			p := base[(o/copies)*hw+j]
			if p >= pin {
				return nil
			}
			pos[o*hw+j] = (o%copies)*pin + p
		}
	}
	return pos
}
