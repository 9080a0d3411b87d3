package http_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/plan"
)

// TestDeploySettings deploys a model with an approximated activation over
// HTTP with compile settings and checks that the stored plan is the one
// the compiler makes with them: privacy level and query budget, degree,
// fit, margin, ring, precision; and the default fit with and without
// calibration data.
func TestDeploySettings(t *testing.T) {
	ctx := context.Background()
	url, store, a := MustServer(t)
	owner := signup(t, url, a)("olivia", fheserve.RoleOwner)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "onnx", name))
		check(t, err)
		return b
	}
	model, calib := read("relu.onnx"), read("relu.calib.npy")
	g, err := onnx.Import(model, onnx.Options{})
	check(t, err)
	c, err := npy.ReadFile(filepath.Join("..", "testdata", "onnx", "relu.calib.npy"))
	check(t, err)

	// storedPlan is the plan the store holds for model id.
	storedPlan := func(id string) *plan.Plan {
		m, err := store.Model(ctx, id)
		check(t, err)
		var p plan.Plan
		check(t, json.Unmarshal(m.PlanJSON, &p))
		return &p
	}
	tests := []struct {
		name     string
		settings fheserve.CompileSettings
		calib    bool
		want     compiler.Options // what the server must compile with
	}{
		{
			name: "every setting",
			settings: fheserve.CompileSettings{Degree: 5, Fit: fheserve.FitLeastSquares, Margin: 0.2, LogN: 14,
				PrivacyBits: 20, QueryBudget: 1000, PrecisionBits: 10},
			calib: true,
			want: compiler.Options{Degree: 5, Fit: compiler.FitLeastSquares, Margin: 0.2, LogN: 14,
				PrivacyBits: 20, QueryBudget: 1000, PrecisionBits: 10},
		},
		{
			name:     "per-node degree, interpolation asked for, no flooding",
			settings: fheserve.CompileSettings{Degrees: map[string]int{"/1/Relu": 9}, Fit: fheserve.FitInterpolation, PrivacyBits: fheserve.NoPrivacy},
			calib:    true,
			want:     compiler.Options{Degrees: map[string]int{"/1/Relu": 9}, PrivacyBits: compiler.NoPrivacy},
		},
		{
			name:     "absolute precision",
			settings: fheserve.CompileSettings{Precision: 0.05},
			calib:    true,
			want:     compiler.Options{Precision: 0.05},
		},
		{
			name:  "defaults with calibration: chosen from the data",
			calib: true,
			want:  compiler.Options{},
		},
		{
			name: "defaults without calibration: interpolation",
			want: compiler.Options{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &fheserve.DeployRequest{Name: "relu", ONNX: model, CompileSettings: tt.settings}
			if tt.calib {
				req.Calibration = calib
				tt.want.Calibration = c.Data
			}
			m, err := owner.Deploy(ctx, req)
			check(t, err)
			got := storedPlan(m.ID)
			g.Name = "relu"
			res, err := compiler.Compile(g, tt.want)
			check(t, err)
			if got.Fingerprint != res.Plan.Fingerprint {
				t.Errorf("stored plan %s, the compiler makes %s with %+v", got.Fingerprint[:16], res.Plan.Fingerprint[:16], tt.want)
			}
			act := got.Activations[0]
			s := tt.settings
			switch {
			case s.Degree != 0 && act.Degree != s.Degree, s.Degrees != nil && act.Degree != s.Degrees[act.Node]:
				t.Errorf("activation degree %d, settings %+v", act.Degree, s)
			case got.ActivationChoice == nil && (tt.want.Fit == compiler.FitLeastSquares) != (act.Fit == compiler.FitLeastSquares):
				t.Errorf("activation fit %q, want %q", act.Fit, tt.want.Fit)
			case (got.ActivationChoice != nil) != (tt.calib && s.Degree == 0 && s.Degrees == nil && s.Fit == "" && s.Margin == 0):
				t.Errorf("activation choice %+v with settings %+v: the compiler chooses exactly when calibration data and no approximation setting are given", got.ActivationChoice, s)
			case s.LogN != 0 && got.Params.LogN != s.LogN:
				t.Errorf("ring 2^%d, want 2^%d", got.Params.LogN, s.LogN)
			}
			pr := got.Precision
			switch s.PrivacyBits {
			case fheserve.NoPrivacy:
				if pr.PrivacyBits != 0 || pr.FloodStd != 0 {
					t.Errorf("privacy %.1f bits, flood std %g: want no flooding", pr.PrivacyBits, pr.FloodStd)
				}
			case 0:
				if pr.PrivacyBits < compiler.DefaultPrivacyBits || pr.QueryBudget != compiler.DefaultQueryBudget {
					t.Errorf("privacy %.1f bits over %d samples, want the defaults", pr.PrivacyBits, pr.QueryBudget)
				}
			default:
				if pr.PrivacyBits < s.PrivacyBits || pr.QueryBudget != s.QueryBudget {
					t.Errorf("privacy %.1f bits over %d samples, want %g over %d", pr.PrivacyBits, pr.QueryBudget, s.PrivacyBits, s.QueryBudget)
				}
			}
			t.Logf("N=2^%d, degree %d, fit %q on [%.3g, %.3g]; privacy %.1f bits over %d samples; output error %.2e",
				got.Params.LogN, act.Degree, act.Fit, act.Interval[0], act.Interval[1], pr.PrivacyBits, pr.QueryBudget, pr.OutputError)
		})
	}
}
