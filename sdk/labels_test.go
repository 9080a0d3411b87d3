package sdk_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/nn/onnx"
)

// TestDeployLabels deploys a model with output labels given, taken from
// the ONNX file's metadata, and refused, and checks that a user sees the
// labels in the model's info.
func TestDeployLabels(t *testing.T) {
	ctx := context.Background()
	d := MustDaemon(t)
	owner, user, _ := mustParties(t, d.URL())
	data := must(os.ReadFile(filepath.Join("..", "testdata", "onnx", "mlp_square.onnx")))(t)
	g := must(onnx.Import(data, onnx.Options{}))(t)
	n := g.OutputShape().Size()
	names := func(prefix string) []string {
		var l []string
		for i := range n {
			l = append(l, fmt.Sprintf("%s %d", prefix, i))
		}
		return l
	}
	withMeta := must(onnx.WithLabels(data, names("meta")))(t)
	for _, tc := range []struct {
		name   string
		onnx   []byte
		labels []string
		want   []string
		code   string
	}{
		{name: "none", onnx: data},
		{name: "given", onnx: data, labels: names("class"), want: names("class")},
		{name: "metadata", onnx: withMeta, want: names("meta")},
		{name: "given over metadata", onnx: withMeta, labels: names("class"), want: names("class")},
		{name: "one short", onnx: data, labels: names("class")[1:], code: fheserve.EINVALID},
		{name: "twice", onnx: data, labels: append(names("class")[1:], "class 1"), code: fheserve.EINVALID},
		{name: "empty", onnx: data, labels: append(names("class")[1:], ""), code: fheserve.EINVALID},
		{name: "too long", onnx: data, labels: append(names("class")[1:], string(make([]byte, fheserve.MaxLabelLen+1))), code: fheserve.EINVALID},
		{name: "metadata one short", onnx: must(onnx.WithLabels(data, names("meta")[1:]))(t), code: fheserve.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := owner.Deploy(ctx, &fheserve.DeployRequest{Name: "labels", ONNX: tc.onnx, Labels: tc.labels})
			if tc.code != "" {
				wantCode(t, err, tc.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(m.Labels, tc.want) {
				t.Errorf("deployed with labels %q, want %q", m.Labels, tc.want)
			}
			seen := must(user.Model(ctx, m.ID))(t)
			if !slices.Equal(seen.Labels, tc.want) {
				t.Errorf("the user sees labels %q, want %q", seen.Labels, tc.want)
			}
		})
	}
}
