#!/bin/sh
# Reproduce the figures of the examples' READMEs: every example on its full
# test set under encryption in batch packing, and a few samples in latency
# packing. Outputs go to examples/data/results/NAME.MODE.txt.
#
#   examples/evaluate.sh                 # all (the Fashion-MNIST CNNs take minutes each)
#   examples/evaluate.sh face-match ...  # some (bundled-cnn: the x*x CNN of bundled/)
#
# Needs the test sets: /usr/bin/python3 examples/make_testsets.py
set -e
cd "$(dirname "$0")/.."
mkdir -p examples/data/results
go build -o examples/data/fheserve ./cmd/fheserve

# The ReLU CNN's approximation: degree 31 on the first ReLU, 15 on the
# second, least-squares fit to the calibration inputs, intervals widened by
# 25% of their width on each side (see fmnist-cnn/README.md).
CNN_FLAGS="--degrees /3/Relu=31,/7/Relu=15 --fit least-squares --margin 0.25"

# run NAME MODE DATA CALIBRATION [flags...]
run() {
	name=$1 mode=$2 data=$3 calib=$4
	shift 4
	model=examples/$name/model.onnx
	case $name in bundled-*) model=bundled/${name#bundled-}.onnx ;; esac
	echo "== $name ($mode)"
	examples/data/fheserve eval --model "$model" \
		--data "examples/data/$data.x.npy" --labels "examples/data/$data.y.npy" \
		--calibration "$calib" --packing "$mode" "$@" |
		tee "examples/data/results/$name.$mode.txt"
}

# Fashion-MNIST models calibrate on 512 training images (make_testsets.py),
# the others on their committed calib.npy.
FMNIST_CALIB=examples/data/fmnist.calib.npy

example() {
	case $1 in
	cancer-logreg)
		run cancer-logreg batch cancer examples/cancer-logreg/calib.npy
		run cancer-logreg latency cancer examples/cancer-logreg/calib.npy --limit 20 ;;
	digits-mlp)
		run digits-mlp batch digits examples/digits-mlp/calib.npy --degree 15
		run digits-mlp latency digits examples/digits-mlp/calib.npy --degree 15 --limit 20 ;;
	face-match)
		run face-match batch faces examples/face-match/calib.npy
		run face-match latency faces examples/face-match/calib.npy --limit 20 ;;
	fmnist-mlp)
		run fmnist-mlp batch fmnist $FMNIST_CALIB
		run fmnist-mlp latency fmnist $FMNIST_CALIB --limit 10 ;;
	fmnist-cnn)
		# shellcheck disable=SC2086
		run fmnist-cnn batch fmnist $FMNIST_CALIB $CNN_FLAGS
		# shellcheck disable=SC2086
		run fmnist-cnn latency fmnist $FMNIST_CALIB $CNN_FLAGS --limit 5 ;;
	fmnist-cnn-poly)
		run fmnist-cnn-poly batch fmnist $FMNIST_CALIB
		run fmnist-cnn-poly latency fmnist $FMNIST_CALIB --limit 5 ;;
	fmnist-resnet)
		run fmnist-resnet batch fmnist $FMNIST_CALIB
		run fmnist-resnet latency fmnist $FMNIST_CALIB --limit 5 ;;
	tenseal-tutorial)
		run tenseal-tutorial batch fmnist $FMNIST_CALIB
		run tenseal-tutorial latency fmnist $FMNIST_CALIB --limit 10 ;;
	bundled-cnn)
		# The x*x CNN that 'fheserve demo' and 'fheserve bench' use.
		run bundled-cnn batch fmnist $FMNIST_CALIB
		run bundled-cnn latency fmnist $FMNIST_CALIB --limit 10 ;;
	*)
		echo "unknown example $1" >&2
		exit 2 ;;
	esac
}

if [ $# -eq 0 ]; then
	set -- cancer-logreg digits-mlp face-match fmnist-mlp bundled-cnn tenseal-tutorial fmnist-cnn-poly fmnist-resnet fmnist-cnn
fi
for name in "$@"; do
	example "$name"
done
