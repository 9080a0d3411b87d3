package sdk_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/internal/clustertest"
	"github.com/fheserve/fheserve/internal/unitvec"
	"github.com/fheserve/fheserve/plan"
)

// galleryAt returns n labelled unit templates of dimension d whose
// cosines with probe lie outside threshold +- 1.5 margin: above, below,
// or anywhere in [-1, 1] outside it; and their cosines.
func galleryAt(rng *rand.Rand, probe []float64, prefix string, n int, threshold, margin float64) ([]string, [][]float64, []float64) {
	var labels []string
	var emb [][]float64
	var cos []float64
	for i := range n {
		var s float64
		switch i % 3 {
		case 0:
			s = threshold + 1.5*margin + rng.Float64()*(1-threshold-1.5*margin)
		case 1:
			s = threshold - 1.5*margin - rng.Float64()*0.2
		default:
			for s = rng.Float64()*2 - 1; math.Abs(s-threshold) < 1.5*margin; s = rng.Float64()*2 - 1 {
			}
		}
		labels = append(labels, prefix+strconv.Itoa(i))
		emb = append(emb, unitvec.AtCosine(rng, probe, s))
		cos = append(cos, s)
	}
	return labels, emb, cos
}

// oracle is the plaintext decision: the labels whose float64 cosine with
// probe reaches the threshold.
func oracle(labels []string, emb [][]float64, probe []float64, threshold float64) []string {
	var m []string
	for i, e := range emb {
		var s float64
		for j, v := range e {
			s += v * probe[j]
		}
		if s >= threshold {
			m = append(m, labels[i])
		}
	}
	return m
}

// TestGalleryEndToEnd runs a gallery through a real server: an owner
// creates it, a user makes keys for it before any template is enrolled,
// the owner enrols, enrols more and removes, and after each step the
// user's encrypted verifications and identifications, with the same
// keys, decide as the float64 oracle does (scores away from the margin).
// The model's daily quota counts the queries, and the signed log holds a
// record per enrolment, removal, verification and identification.
func TestGalleryEndToEnd(t *testing.T) { clustertest.InModes(t, testGalleryEndToEnd) }

func testGalleryEndToEnd(t *testing.T, mode string) {
	ctx := context.Background()
	d := mustDaemonIn(t, mode, app.Config{Workers: 2})
	owner, user, admin := mustParties(t, d.URL())
	const dim, threshold = 32, 0.4
	g := must(owner.CreateGallery(ctx, &fheserve.GalleryRequest{Name: "faces", Dim: dim, Threshold: threshold, Capacity: 16, Margin: 0.25}))(t)
	if g.Templates != 0 || g.Margin <= 0 || g.Margin > 0.25 {
		t.Fatalf("new gallery: %+v", g)
	}
	keys := must(user.GenerateKeys(ctx, g.ModelID))(t)
	must(user.UploadKeys(ctx, keys, ""))(t)
	_, err := user.Identify(ctx, keys, unitvec.Random(rand.New(rand.NewPCG(1, 2)), dim))
	wantCode(t, err, fheserve.ECONFLICT) // no templates yet

	rng := rand.New(rand.NewPCG(3, 4))
	probe := unitvec.Random(rng, dim)
	labels, emb, cos := galleryAt(rng, probe, "a", 6, threshold, g.Margin)
	must(owner.Enroll(ctx, g.ModelID, labels, emb))(t)
	check := func(step string) {
		t.Helper()
		want := oracle(labels, emb, probe, threshold)
		got := must(user.Identify(ctx, keys, probe))(t)
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("%s: identify matched %v, the oracle %v", step, got, want)
		}
		for _, i := range []int{len(labels) - 1} {
			ok := must(user.Verify(ctx, keys, labels[i], probe))(t)
			if ok != (cos[i] >= threshold) {
				t.Fatalf("%s: verify %s (cosine %.3f, threshold %g): %v", step, labels[i], cos[i], threshold, ok)
			}
		}
		listed := must(user.Gallery(ctx, g.ModelID))(t)
		if !slices.Equal(listed.Labels, labels) || listed.Templates != len(labels) {
			t.Fatalf("%s: gallery lists %v (%d), want %v", step, listed.Labels, listed.Templates, labels)
		}
	}
	check("enrol 6")
	more, moreEmb, moreCos := galleryAt(rng, probe, "b", 5, threshold, g.Margin)
	must(owner.Enroll(ctx, g.ModelID, more, moreEmb))(t)
	labels, emb, cos = append(labels, more...), append(emb, moreEmb...), append(cos, moreCos...)
	check("enrol 5 more, same keys")
	must(owner.RemoveTemplates(ctx, g.ModelID, labels[0], labels[4]))(t)
	for _, i := range []int{4, 0} {
		labels, emb, cos = slices.Delete(labels, i, i+1), slices.Delete(emb, i, i+1), slices.Delete(cos, i, i+1)
	}
	check("remove 2")
	_, err = user.Verify(ctx, keys, "a0", probe)
	wantCode(t, err, fheserve.ENOTFOUND)
	// The model's quotas count queries: 6 ran today.
	must(owner.API.SetLimits(ctx, g.ModelID, &fheserve.ModelLimits{Daily: 6}))(t)
	_, err = user.Verify(ctx, keys, labels[0], probe)
	wantCode(t, err, fheserve.ERATELIMIT)

	counts := map[string]int{}
	q := audit.Query{Object: audit.Object{Kind: audit.KindModel, ID: g.ModelID}, Limit: audit.MaxLimit}
	page := must((&audit.Client{URL: d.URL() + audit.PathPrefix, Token: admin.Token()}).Records(ctx, q))(t)
	for _, it := range page.Records {
		counts[must(audit.DecodeRecord(it.Record))(t).Action]++
	}
	want := map[string]int{"gallery.create": 1, "gallery.enroll": 2, "gallery.remove": 1, "gallery.identify": 3, "gallery.verify": 3}
	for a, n := range want {
		if counts[a] != n {
			t.Errorf("the signed log holds %d %s records, want %d (all: %v)", counts[a], a, n, counts)
		}
	}
}

// TestGalleryResultHoldsDecisionsOnly decrypts, as the user can, every
// slot and every coefficient of a verification's and an
// identification's result fetched from a real server: the declared
// slots hold the decisions (within the plan's stated error of 0 or 1),
// and every other slot and every coefficient is Gaussian flood noise of
// the plan's stated deviation and nothing beyond it; no score.
func TestGalleryResultHoldsDecisionsOnly(t *testing.T) {
	for _, method := range []string{fheserve.GalleryPolynomial, fheserve.GalleryRandomized} {
		t.Run(method, func(t *testing.T) { resultHoldsDecisionsOnly(t, method) })
	}
}

func resultHoldsDecisionsOnly(t *testing.T, method string) {
	ctx := context.Background()
	d := MustDaemon(t)
	owner, user, _ := mustParties(t, d.URL())
	const dim, threshold = 32, 0.4
	g := must(owner.CreateGallery(ctx, &fheserve.GalleryRequest{Name: "faces", Dim: dim, Threshold: threshold, Capacity: 16, Margin: 0.25, Decision: method}))(t)
	if g.Decision != method {
		t.Fatalf("gallery decides by %q, want %q", g.Decision, method)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	probe := unitvec.Random(rng, dim)
	labels, emb, cos := galleryAt(rng, probe, "p", 9, threshold, g.Margin)
	must(owner.Enroll(ctx, g.ModelID, labels, emb))(t)
	keys := must(user.GenerateKeys(ctx, g.ModelID))(t)
	must(user.UploadKeys(ctx, keys, ""))(t)
	params := must(he.NewParameters(keys.Plan.Params))(t)
	secret := must(client.UnmarshalSecret(params, must(keys.MarshalSecret())(t)))(t)

	for _, claim := range []string{labels[0], ""} {
		mode, names, want := plan.Identify, labels, cos
		if claim != "" {
			mode, names, want = plan.Verify, nil, cos[:1]
		}
		v := must(keys.Plan.DecisionView(mode, names))(t)
		ct := must(keys.Encrypt(probe, 1))(t)
		j := must(user.API.Submit(ctx, &fheserve.SubmitRequest{ModelID: g.ModelID, KeySetID: keys.KeySetID, Samples: 1, Claim: claim}, bytes.NewReader(ct), int64(len(ct))))(t)
		must(user.Wait(ctx, j.ID, nil))(t)
		r := must(user.API.Result(ctx, j.ID))(t)
		raw := must(io.ReadAll(r))(t)
		r.Close()
		cts := must(he.UnmarshalResult(bytes.NewReader(raw), params, he.Limits{MaxCount: v.Output.Ciphertexts}))(t)
		slots := must(secret.Decrypt(cts))(t)[0]
		for _, c := range cts {
			c.IsBatched = false
		}
		coeffs := must(secret.DecryptCoeffs(cts))(t)[0]

		scale := math.Exp2(float64(v.Output.LogScale))
		sigmaSlot := v.Precision.FloodStd * math.Sqrt(float64(len(slots))) / scale
		declared := map[int]bool{}
		for i, s := range want {
			pos := plan.Pos(v.Output.Positions, i)
			declared[pos] = true
			if err := decisionWithin(v.Decision, s, slots[pos]); err != nil {
				t.Errorf("%s: decision %d: %v", mode, i, err)
			}
		}
		var rest []float64
		for i, x := range slots {
			if !declared[i] {
				rest = append(rest, x)
			}
		}
		onlyNoise(t, mode+" slots", rest, sigmaSlot)
		// The declared slots' values show in every coefficient (slot j is
		// the evaluation at the root zeta^(5^j) of the 2N-th roots of
		// unity): the coefficients less their share are noise alone.
		n2 := 2 * len(coeffs)
		for pos := range declared {
			g, z := 1, slots[pos]
			for range pos {
				g = g * 5 % n2
			}
			for k := range coeffs {
				coeffs[k] -= 4 / float64(n2) * z * math.Cos(math.Pi*float64(k*g%n2)/float64(n2/2))
			}
		}
		onlyNoise(t, mode+" coefficients", coeffs, v.Precision.FloodStd/scale)
	}
}

// decisionWithin checks a decrypted decision of a template at cosine s
// from the probe (outside the margin) against the float64 oracle: 0 or
// 1 within the stated error (polynomial), or r (s - threshold)/range
// within it, r in [1/spread, 1] (randomized).
func decisionWithin(d *plan.Decision, s, out float64) error {
	if d.IsRandomized() {
		x := (s - d.Threshold) / d.Range
		if out*x <= 0 || math.Abs(out) > math.Abs(x)+d.Error || math.Abs(out) < math.Abs(x)/d.Spread-d.Error {
			return fmt.Errorf("cosine %.3f decrypts to %.4g, want r %.4g with r in [1/%g, 1], within %.3g", s, out, x, d.Spread, d.Error)
		}
		return nil
	}
	step := 0.0
	if s >= d.Threshold {
		step = 1
	}
	if math.Abs(out-step) > d.Error {
		return fmt.Errorf("cosine %.3f decrypts to %.4f, want %g within %.3g", s, out, step, d.Error)
	}
	return nil
}

// onlyNoise checks that xs look like zero-mean Gaussian noise of
// deviation sigma: their deviation within 20% of it, their mean within
// 6 standard errors of 0, and no value beyond 7 sigma.
func onlyNoise(t *testing.T, what string, xs []float64, sigma float64) {
	t.Helper()
	var sum, sq, biggest float64
	for _, x := range xs {
		sum += x
		sq += x * x
		biggest = math.Max(biggest, math.Abs(x))
	}
	n := float64(len(xs))
	mean := sum / n
	sd := math.Sqrt(sq/n - mean*mean)
	if sd < 0.8*sigma || sd > 1.2*sigma || math.Abs(mean) > 6*sigma/math.Sqrt(n) || biggest > 7*sigma {
		t.Errorf("%s: %d values of mean %.3g, deviation %.3g, largest %.3g; flood noise alone has deviation %.3g", what, len(xs), mean, sd, biggest, sigma)
	}
	t.Logf("%s: %d values, deviation %.3g (flood %.3g), largest %.1f deviations", what, len(xs), sd, sigma, biggest/sd)
}

// TestGalleryLong runs, through a real server, galleries of 16 and 1,000
// templates of dimension 128 at the default margin: 5 verifications (of
// 2 claims) and 5 identifications each, decided as the float64 oracle
// outside the margin, and logs the medians of their times end to end
// (the SDK call) and of the jobs (preparation and evaluation), for
// BENCHMARKS.md.
func TestGalleryLong(t *testing.T) {
	if !*long {
		t.Skip("-long: 1,000 templates at N=2^15 (a few minutes, about 2 GB)")
	}
	for _, n := range []int{16, 1000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) { galleryTimes(t, n) })
	}
}

func galleryTimes(t *testing.T, n int) {
	ctx := context.Background()
	d := MustDaemon(t)
	owner, user, _ := mustParties(t, d.URL())
	const dim, threshold = 128, 0.5
	g := must(owner.CreateGallery(ctx, &fheserve.GalleryRequest{Name: "faces", Dim: dim, Threshold: threshold, Capacity: n}))(t)
	rng := rand.New(rand.NewPCG(uint64(n), 5))
	probe := unitvec.Random(rng, dim)
	labels, emb, cos := galleryAt(rng, probe, "t", n, threshold, g.Margin)
	t0 := time.Now()
	must(owner.Enroll(ctx, g.ModelID, labels, emb))(t)
	enrol := time.Since(t0)
	t0 = time.Now()
	keys := must(user.GenerateKeys(ctx, g.ModelID))(t)
	must(user.UploadKeys(ctx, keys, ""))(t)
	keygen := time.Since(t0)
	want := oracle(labels, emb, probe, threshold)
	// Claims 0 and 1, then 0, 1, 0 again: a claim's program is prepared
	// once, then cached.
	var first, again, identify []float64
	for k := range 5 {
		i := k % 2
		t0 = time.Now()
		ok := must(user.Verify(ctx, keys, labels[i], probe))(t)
		if k < 2 {
			first = append(first, time.Since(t0).Seconds())
		} else {
			again = append(again, time.Since(t0).Seconds())
		}
		if ok != (cos[i] >= threshold) {
			t.Fatalf("verify %s (cosine %.3f): %v", labels[i], cos[i], ok)
		}
		t0 = time.Now()
		got := must(user.Identify(ctx, keys, probe))(t)
		identify = append(identify, time.Since(t0).Seconds())
		if !slices.Equal(got, want) {
			t.Fatalf("identify matched %d labels, the oracle %d", len(got), len(want))
		}
	}
	var evalV, evalI []float64
	for _, j := range must(user.API.Jobs(ctx))(t) {
		e := j.FinishedAt.Sub(*j.StartedAt).Seconds()
		if j.Claim != "" {
			evalV = append(evalV, e)
		} else {
			evalI = append(evalI, e)
		}
	}
	// Jobs come oldest first: the first two verifications prepared.
	p := keys.Plan
	t.Logf("%d templates of %d: N=2^%d, depth %d, margin %.3g, %d rotation keys (%s), enrol %.2f s, keys %.1f s",
		n, dim, p.Params.LogN, p.Depth, g.Margin, len(p.Rotations), fmtMB(keys.EvalKeysSize()), enrol.Seconds(), keygen.Seconds())
	t.Logf("verify, first of a claim: median %.2f s end to end, job %.2f s; again: median %.2f s end to end, job %.2f s",
		median(first), median(evalV[:2]), median(again), median(evalV[2:]))
	t.Logf("identify: median %.2f s end to end, job %.2f s (the first prepares the revision's program: %.2f s)",
		median(identify), median(evalI), evalI[0])
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2]
}

func fmtMB(b int) string { return strconv.FormatFloat(float64(b)/1e6, 'f', 1, 64) + " MB" }

// TestGallerySplitEndToEnd runs a randomized gallery of more templates
// than a ciphertext has slots (8,200 of 8 dimensions: two result
// ciphertexts at N=2^14) through a real server: enrolled in two
// requests, identified and verified with keys made before, every
// decision the float64 oracle's.
func TestGallerySplitEndToEnd(t *testing.T) {
	ctx := context.Background()
	d := MustDaemon(t)
	owner, user, _ := mustParties(t, d.URL())
	const dim, threshold, n = 8, 0.4, 8200
	g := must(owner.CreateGallery(ctx, &fheserve.GalleryRequest{Name: "crowd", Dim: dim, Threshold: threshold, Capacity: n}))(t)
	if g.Decision != fheserve.GalleryRandomized || g.Spread < 16 {
		t.Fatalf("new gallery: %+v, want randomized decisions", g)
	}
	keys := must(user.GenerateKeys(ctx, g.ModelID))(t)
	must(user.UploadKeys(ctx, keys, ""))(t)
	rng := rand.New(rand.NewPCG(5, 6))
	probe := unitvec.Random(rng, dim)
	labels, emb, cos := galleryAt(rng, probe, "c", n, threshold, g.Margin)
	for i := 0; i < n; i += fheserve.MaxEnroll {
		j := min(i+fheserve.MaxEnroll, n)
		must(owner.Enroll(ctx, g.ModelID, labels[i:j], emb[i:j]))(t)
	}
	got := must(user.Identify(ctx, keys, probe))(t)
	if want := oracle(labels, emb, probe, threshold); !slices.Equal(got, want) {
		t.Fatalf("identify matched %d labels, the oracle %d", len(got), len(want))
	}
	for _, i := range []int{n - 1, n - 2} {
		if ok := must(user.Verify(ctx, keys, labels[i], probe))(t); ok != (cos[i] >= threshold) {
			t.Fatalf("verify %s (cosine %.3f): %v", labels[i], cos[i], ok)
		}
	}
}
