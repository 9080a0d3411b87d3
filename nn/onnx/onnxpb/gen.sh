#!/bin/sh
# Regenerates onnx.pb.go from onnx.proto, a copy of the ONNX IR schema
# (onnx.proto from the onnx Python package, /usr/lib/python3/dist-packages/onnx).
# The build does not need protoc: onnx.pb.go is committed.
#
# Made with libprotoc 3.21.12 and protoc-gen-go v1.36.12:
#   GOBIN=/tmp/gobin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
set -eu
cd "$(dirname "$0")"
PATH="${GOBIN:-/tmp/gobin}:$PATH" protoc \
	--go_out=. --go_opt=paths=source_relative \
	--go_opt=Monnx.proto=github.com/fheserve/fheserve/nn/onnx/onnxpb\;onnxpb \
	onnx.proto
