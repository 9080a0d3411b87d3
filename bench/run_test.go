package bench

import (
	"context"
	"encoding/json"
	"flag"
	"runtime"
	"testing"

	"github.com/fheserve/fheserve/plan"
)

var long = flag.Bool("long", false, "also run the mlp in batch mode (a minute at N=2^14) and the residual CNN example")

// TestWorkloads runs every workload's latency mode, the mlp with filled
// tiles, and logreg in batch mode (with -long, the mlp too), and examples
// read from ../examples (cancer-logreg; with -long, fmnist-resnet; the cnn with -long only), and
// checks each encrypted prediction's class against the plaintext
// reference and that the result reports keys, peak memory and privacy. The full benchmark is
// `fheserve bench`.
func TestWorkloads(t *testing.T) {
	cases := []struct{ name, mode string }{
		{"logreg", plan.Latency}, {"mlp", plan.Latency}, {"cnn", plan.Latency}, {"match", plan.Latency},
		{"mlp", Tiles}, {"logreg", plan.Batch}, {"mlp", plan.Batch},
		{"cancer-logreg", plan.Latency}, {"fmnist-resnet", plan.Latency},
	}
	for _, tc := range cases {
		t.Run(tc.name+"/"+tc.mode, func(t *testing.T) {
			if testing.Short() && tc.name != "logreg" {
				t.Skip("short")
			}
			// The cnn's fast keys take 150 MB and most of this test's time; its
			// evaluation is checked by he/server's TestHornerBundled and local's
			// convolution tests.
			if (tc.name == "mlp" && tc.mode == plan.Batch || tc.name == "fmnist-resnet" || tc.name == "cnn") && !*long {
				t.Skip("a minute or more: run with -long")
			}
			r, err := Run(context.Background(), tc.name, tc.mode, Options{LatencyCalls: 2, BatchSamples: 256, Examples: "../examples"})
			if err != nil {
				t.Fatal(err)
			}
			if tc.mode == Tiles && (r == nil || r.SamplesPerCall < 2 || r.Samples != 2*r.SamplesPerCall) {
				t.Fatalf("tiles mode: %+v, want two calls of every tile", r)
			}
			b, _ := json.Marshal(r)
			t.Logf("%s", b)
			if r.ArgmaxAgreement != 1 {
				t.Errorf("argmax agreement %.3f, want 1", r.ArgmaxAgreement)
			}
			if r.MaxAbsError > r.StatedError {
				t.Errorf("max error %g above the stated %g", r.MaxAbsError, r.StatedError)
			}
			if r.EvalKeyBytes <= 0 || r.PrivacyBits <= 0 || runtime.GOOS == "linux" && r.PeakRSSBytes <= 0 {
				t.Errorf("eval keys %d bytes, privacy %g bits, peak %d bytes: want each reported", r.EvalKeyBytes, r.PrivacyBits, r.PeakRSSBytes)
			}
		})
	}
}

// TestGalleryWorkloads runs the verify workload (and with -long the
// identifications of 1,000 and 10,000 templates) randomized: every
// decision outside the margin equals float64's.
func TestGalleryWorkloads(t *testing.T) {
	for _, name := range GalleryWorkloads {
		t.Run(name, func(t *testing.T) {
			if name != "verify" && !*long {
				t.Skip("minutes and gigabytes: run with -long")
			}
			r, err := RunGallery(context.Background(), name, plan.Randomized, Options{LatencyCalls: 2})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(r)
			t.Logf("%s", b)
			if r.ArgmaxAgreement != 1 {
				t.Errorf("decision agreement %.3f outside the margin %.3g, want 1", r.ArgmaxAgreement, r.Margin)
			}
		})
	}
}
