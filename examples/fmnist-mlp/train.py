"""fmnist-mlp: a Fashion-MNIST MLP with x*x activations, exact under CKKS.

Flatten, Linear(784,128), BatchNorm, x*x, Linear(128,32), BatchNorm, x*x,
Linear(32,10). BatchNorm folds into the preceding Linear on import, and
each x*x is one ciphertext product, so the network costs five levels and
its encrypted outputs match the plaintext ones up to CKKS noise.

Inputs are [N,1,28,28], pixels scaled to [0,1] then normalized as
(x - 0.2860) / 0.3530, the same as the bundled models (one test set,
examples/data/fmnist.x.npy, serves every Fashion-MNIST example).

    /usr/bin/python3 examples/fmnist-mlp/train.py
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import zoo  # noqa: E402

NAME = "fmnist-mlp"


def main():
    zoo.setup()
    xtr, ytr, xte, yte = zoo.fashion()
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.BatchNorm1d(128), zoo.Square(),
                          nn.Linear(128, 32), nn.BatchNorm1d(32), zoo.Square(), nn.Linear(32, 10))
    zoo.train(model, xtr, ytr, xte, yte, epochs=10, lr=1e-3)
    ranges = zoo.input_ranges(model, xte, zoo.Square)
    print(f"  max |input| of each x*x on the test set: {', '.join(f'{v:.1f}' for v in ranges)}; "
          f"max |output| {abs(zoo.predict(model, xte)).max():.1f}")
    print(f"  test accuracy {zoo.accuracy(model, xte, yte):.4f}")
    zoo.export(model, NAME, torch.from_numpy(xte[:1]))
    zoo.save_fixtures(NAME, xte, yte, zoo.calibration_rows(xtr, 128), 100)


if __name__ == "__main__":
    main()
