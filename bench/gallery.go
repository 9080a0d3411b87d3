package bench

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/internal/unitvec"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/plan"
)

// GalleryWorkloads are the face-gallery workloads, run only when named
// (the larger ones take minutes and gigabytes): a 1:1 verification on a
// gallery of 1,000 templates, and 1:N identifications over synthetic
// galleries of unit vectors of 128 dimensions. Their modes are the
// decision methods (GalleryModes).
var GalleryWorkloads = []string{"verify", "identify-1000", "identify-10000", "identify-65536"}

// GalleryModes are the decision methods a gallery workload runs in by
// default; plan.Polynomial runs when asked.
var GalleryModes = []string{plan.Randomized}

// galleryDim is the dimension of the synthetic templates (FaceRecognitionNet's).
const galleryDim = 128

// isGallery reports whether name is a gallery workload.
func isGallery(name string) bool {
	for _, w := range GalleryWorkloads {
		if w == name {
			return true
		}
	}
	return false
}

// galleryTemplates is a workload's gallery size: verify runs on 1,000.
func galleryTemplates(name string) int {
	if n, err := strconv.Atoi(strings.TrimPrefix(name, "identify-")); err == nil {
		return n
	}
	return 1000
}

// RunGallery runs a gallery workload with a decision method: the plan of
// the gallery's capacity and a user's keys for it, as a service makes
// them, then the server's preparation of the query (the templates
// encoded) and LatencyCalls encrypted queries of one probe. The gallery
// is synthetic: unit vectors at cosines with the probe spread evenly over
// [-1, 1]. The agreement is the fraction of decisions outside the plan's
// margin equal to float64's (it must be 1); StatedError is the margin.
func RunGallery(ctx context.Context, name, method string, opts Options) (*Result, error) {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.LatencyCalls <= 0 {
		opts.LatencyCalls = 8
	}
	n := galleryTemplates(name)
	const threshold = 0.5
	rng := rand.New(rand.NewPCG(uint64(n), 17))
	probe := unitvec.Random(rng, galleryDim)
	g := &compiler.Gallery{Name: name, Dim: galleryDim, Metric: compiler.MetricCosine, Threshold: threshold}
	score := make([]float64, n)
	for i := range n {
		score[i] = -1 + 2*(float64(i)+0.5)/float64(n)
		g.Templates = append(g.Templates, unitvec.AtCosine(rng, probe, score[i])...)
		g.Labels = append(g.Labels, "t"+strconv.Itoa(i))
	}
	measured := resetPeak()
	gopts := compiler.GalleryOptions{Decision: method}
	gopts.Keys = opts.Keys
	base, err := local.NewGalleryPlan(g, n, gopts, opts.Workers)
	if err != nil {
		return nil, err
	}
	claim := ""
	if name == "verify" {
		// A match at cosine 0.6, 0.1 above the threshold.
		claim = g.Labels[4*n/5]
	}
	t0 := time.Now()
	r, err := base.Query(g, claim, opts.Workers)
	if err != nil {
		return nil, err
	}
	prep := time.Since(t0)
	r.Stats.Keygen, r.Stats.EvalKeyByte, r.Stats.PublicKey = base.Stats.Keygen, base.Stats.EvalKeyByte, base.Stats.PublicKey
	want := score
	if claim != "" {
		want = score[4*n/5 : 4*n/5+1]
	}
	d := r.Plan.Decision
	agree, outside := 0, 0
	for range opts.LatencyCalls {
		out, err := r.Predict(ctx, probe, 1)
		if err != nil {
			return nil, err
		}
		for i, ok := range d.Decisions(out) {
			if math.Abs(want[i]-threshold) >= d.Margin {
				outside++
				if ok == (want[i] >= threshold) {
					agree++
				}
			}
		}
	}
	var peak int64
	if measured {
		peak = peakRSS()
	}
	res := newResult(name, method, r, opts.LatencyCalls, 0)
	res.PeakRSSBytes, res.Workers = peak, opts.Workers
	res.Templates, res.PrepareMS, res.Margin = n, ms(prep), d.Margin
	res.StatedError = d.Margin
	if outside > 0 {
		res.ArgmaxAgreement = float64(agree) / float64(outside)
	}
	return res, nil
}

// galleryModes are the decision methods a gallery workload runs in.
func galleryModes(opts Options) ([]string, error) {
	if len(opts.Decisions) == 0 {
		return GalleryModes, nil
	}
	for _, m := range opts.Decisions {
		if m != plan.Randomized && m != plan.Polynomial {
			return nil, fheserve.Errorf(fheserve.EINVALID, "unknown decision method %q (want %q or %q)", m, plan.Randomized, plan.Polynomial)
		}
	}
	return opts.Decisions, nil
}
