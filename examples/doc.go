// Package examples is fheserve's model zoo: one folder per model, each
// with the script that trains it (train.py), the exported model.onnx,
// calibration rows (calib.npy), a small labelled test fixture
// (test.x.npy, test.y.npy) and a README stating its plaintext and
// encrypted accuracy and latency and the command that reproduces them.
//
// The package holds no code, only the test that runs a few fixture rows of
// every example encrypted and checks them against the plaintext model.
// make_testsets.py writes the full test sets to examples/data for
// `fheserve eval`. See README.md.
package examples
