package onnx

import (
	"encoding/json"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/nn/onnx/onnxpb"
)

func modelWithProps(tb testing.TB, props map[string]string) []byte {
	tb.Helper()
	m := &onnxpb.ModelProto{IrVersion: proto.Int64(7), Graph: &onnxpb.GraphProto{Name: proto.String("g")}}
	for _, k := range []string{"author", LabelsKey} {
		if v, ok := props[k]; ok {
			m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(v)})
		}
	}
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestLabels(t *testing.T) {
	names := []string{"T-shirt/top", "Trouser", "Ankle boot", "ünïcode"}
	js, _ := json.Marshal(names)
	for _, tc := range []struct {
		name  string
		data  []byte
		want  []string
		code  string
		round bool // WithLabels(data, names) must read back names
	}{
		{name: "none", data: modelWithProps(t, nil), round: true},
		{name: "other entries", data: modelWithProps(t, map[string]string{"author": "x"}), round: true},
		{name: "labels", data: modelWithProps(t, map[string]string{"author": "x", LabelsKey: string(js)}), want: names, round: true},
		{name: "not json", data: modelWithProps(t, map[string]string{LabelsKey: "a,b"}), code: fheserve.EINVALID},
		{name: "not strings", data: modelWithProps(t, map[string]string{LabelsKey: "[1,2]"}), code: fheserve.EINVALID},
		{name: "null", data: modelWithProps(t, map[string]string{LabelsKey: "null"}), code: fheserve.EINVALID},
		{name: "truncated", data: modelWithProps(t, map[string]string{LabelsKey: string(js)})[:20], code: fheserve.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Labels(tc.data)
			if fheserve.ErrorCode(err) != tc.code && !(tc.code == "" && err == nil) {
				t.Fatalf("Labels: %v, want code %q", err, tc.code)
			}
			if err == nil && !slices.Equal(got, tc.want) {
				t.Errorf("Labels = %q, want %q", got, tc.want)
			}
			if !tc.round {
				return
			}
			with, err := WithLabels(tc.data, names)
			if err != nil {
				t.Fatal(err)
			}
			// The file stays a valid ModelProto whose last labels entry
			// is the one added.
			var m onnxpb.ModelProto
			if err := proto.Unmarshal(with, &m); err != nil {
				t.Fatalf("WithLabels made a malformed model: %v", err)
			}
			props := m.GetMetadataProps()
			if last := props[len(props)-1]; last.GetKey() != LabelsKey || last.GetValue() != string(js) {
				t.Errorf("the last metadata entry is %q=%q", last.GetKey(), last.GetValue())
			}
			if got, err := Labels(with); err != nil || !slices.Equal(got, names) {
				t.Errorf("Labels(WithLabels) = %q, %v; want %q", got, err, names)
			}
		})
	}
}

// FuzzLabels checks that Labels never panics on untrusted bytes and
// returns only checked errors.
func FuzzLabels(f *testing.F) {
	f.Add(modelWithProps(f, map[string]string{LabelsKey: `["a","b"]`}))
	f.Add(modelWithProps(f, map[string]string{"author": "x"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := Labels(data); err != nil && fheserve.ErrorCode(err) == fheserve.EINTERNAL {
			t.Fatalf("unchecked error: %v", err)
		}
	})
}
