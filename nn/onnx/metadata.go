package onnx

import (
	"encoding/json"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fheserve/fheserve"
)

// LabelsKey is the key of the ONNX model metadata entry (ModelProto's
// metadata_props) that names a model's outputs: a JSON array of strings,
// one per output value, e.g. ["T-shirt/top", "Trouser", ...]. In Python:
// onnx.helper.set_model_props(m, {"labels": json.dumps(names)}).
const LabelsKey = "labels"

// maxLabelsBytes bounds the metadata value Labels decodes.
const maxLabelsBytes = 1 << 20

// Labels returns the output labels an ONNX file's metadata carries under
// LabelsKey, or nil if it carries none. It reads only the model's
// top-level fields, so it is cheap next to Import; it does not check the
// labels against the model (fheserve.ValidLabels does).
func Labels(data []byte) ([]string, error) {
	var value []byte
	found := false
	for b := data; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, malformed(protowire.ParseError(n))
		}
		b = b[n:]
		if num == 14 && typ == protowire.BytesType { // metadata_props
			entry, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, malformed(protowire.ParseError(n))
			}
			b = b[n:]
			k, v, err := keyValue(entry)
			if err != nil {
				return nil, err
			}
			if k == LabelsKey {
				value, found = v, true
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, malformed(protowire.ParseError(n))
		}
		b = b[n:]
	}
	if !found {
		return nil, nil
	}
	if len(value) > maxLabelsBytes {
		return nil, fheserve.Errorf(fheserve.ETOOLARGE, "the ONNX metadata's %q entry has %d bytes, the limit is %d", LabelsKey, len(value), maxLabelsBytes)
	}
	var labels []string
	if err := json.Unmarshal(value, &labels); err != nil || labels == nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "the ONNX metadata's %q entry must be a JSON array of strings, one per output", LabelsKey)
	}
	return labels, nil
}

// keyValue decodes a StringStringEntryProto: key = 1, value = 2.
func keyValue(b []byte) (key string, value []byte, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", nil, malformed(protowire.ParseError(n))
		}
		b = b[n:]
		if (num == 1 || num == 2) && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", nil, malformed(protowire.ParseError(n))
			}
			b = b[n:]
			if num == 1 {
				key = string(v)
			} else {
				value = v
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "", nil, malformed(protowire.ParseError(n))
		}
		b = b[n:]
	}
	return key, value, nil
}

func malformed(err error) error {
	return fheserve.Errorf(fheserve.EINVALID, "malformed ONNX model: %v", err)
}

// WithLabels returns an ONNX file with labels under LabelsKey in its
// metadata, after any entry it has (the last entry of a key wins).
func WithLabels(data []byte, labels []string) ([]byte, error) {
	v, err := json.Marshal(labels)
	if err != nil {
		return nil, err
	}
	var entry []byte
	entry = protowire.AppendTag(entry, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, LabelsKey)
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendBytes(entry, v)
	out := append([]byte(nil), data...)
	out = protowire.AppendTag(out, 14, protowire.BytesType)
	return protowire.AppendBytes(out, entry), nil
}
