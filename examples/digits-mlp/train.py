"""digits-mlp: a scikit-learn MLP with tanh on the 8x8 digits, the
activation approximated under encryption.

Trained with scikit-learn's MLPClassifier (one hidden layer of 32 tanh
units) and exported through PyTorch with the same weights, since skl2onnx
is not available offline. Inputs are the 64 pixels scaled from 0-16 to
[0, 1]. tanh is smooth and bounded, so a low-degree Chebyshev
interpolant on the calibrated interval approximates it closely.

    /usr/bin/python3 examples/digits-mlp/train.py
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from torch import nn  # noqa: E402

import zoo  # noqa: E402

NAME = "digits-mlp"


def main():
    zoo.setup()
    xtr, ytr, xte, yte = zoo.digits()
    clf = MLPClassifier(hidden_layer_sizes=(32,), activation="tanh", alpha=1e-3, max_iter=500,
                        random_state=0).fit(xtr, ytr)
    print(f"  scikit-learn: train {clf.score(xtr, ytr):.4f}, test {clf.score(xte, yte):.4f} on {len(xte)} rows")

    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    with torch.no_grad():
        for layer, w, b in zip([model[0], model[2]], clf.coefs_, clf.intercepts_):
            layer.weight.copy_(torch.from_numpy(w.T.astype(np.float32)))
            layer.bias.copy_(torch.from_numpy(b.astype(np.float32)))
    print(f"  exported model: test {zoo.accuracy(model, xte, yte):.4f}")
    print(f"  max |input| of tanh on the test set: {zoo.input_ranges(model, xte, nn.Tanh)[0]:.2f}")
    zoo.export(model, NAME, torch.from_numpy(xte[:1]))
    zoo.save_fixtures(NAME, xte, yte, zoo.calibration_rows(xtr, 128), 200)


if __name__ == "__main__":
    main()
