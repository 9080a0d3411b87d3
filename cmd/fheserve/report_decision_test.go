package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/plan"
)

func TestPlanReportStatesDecisionMargin(t *testing.T) {
	g := &compiler.Gallery{Name: "faces", Dim: 2, Metric: compiler.MetricCosine, Threshold: 0.5,
		Labels: []string{"ada", "bob"}, Templates: []float64{1, 0, 0, 1}}
	res, err := compiler.CompileGallery(g, compiler.GalleryOptions{Mode: plan.Identify, Margin: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := writePlanReport(&b, res.Plan); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("margin: scores within %.4g of the threshold", res.Plan.Decision.Margin)
	if !strings.Contains(b.String(), want) || !strings.Contains(b.String(), "one match bit per enrolled template") {
		t.Fatalf("report does not state the decisions and margin:\n%s", b.String())
	}
}
