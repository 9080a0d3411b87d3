// Package examples is fheserve's model zoo: one folder per model, each
// with the script that trains it (train.py), the exported model.onnx,
// calibration rows (calib.npy), a small labelled test fixture
// (test.x.npy, test.y.npy) and a README stating its plaintext and
// encrypted accuracy and latency and the command that reproduces them.
//
// The package's code is Zoo, each example's compilation settings, and
// Example.Load, which reads an example's model and fixtures; the test runs
// a few fixture rows of every example encrypted and checks them against
// the plaintext model, and `fheserve bench --examples` runs them as
// benchmark workloads.
// make_testsets.py writes the full test sets to examples/data for
// `fheserve eval`. See README.md.
package examples
