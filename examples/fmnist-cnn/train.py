"""fmnist-cnn: a Fashion-MNIST CNN trained with ReLU as usual, whose ReLUs
the compiler replaces by Chebyshev interpolants under encryption.

Conv2d(1,8,5), AvgPool2d(2), BatchNorm, ReLU, Flatten, Linear(1152,64),
BatchNorm, ReLU, Linear(64,10). Nothing in training knows about
encryption: the only HE-minded choices are average pooling (MaxPool has no
polynomial form) placed before the activation, which divides the number of
activations to evaluate by four, and BatchNorm, which keeps the ReLU inputs
in a narrow range and folds into the layer before it.

Inputs are [N,1,28,28] normalized as the other Fashion-MNIST examples.

    /usr/bin/python3 examples/fmnist-cnn/train.py
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import zoo  # noqa: E402

NAME = "fmnist-cnn"


def main():
    zoo.setup()
    xtr, ytr, xte, yte = zoo.fashion()
    model = nn.Sequential(nn.Conv2d(1, 8, 5), nn.AvgPool2d(2), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 12 * 12, 64), nn.BatchNorm1d(64), nn.ReLU(),
                          nn.Linear(64, 10))
    zoo.train(model, xtr, ytr, xte, yte, epochs=10, lr=2e-3, augment=zoo.hflip)
    ranges = zoo.input_ranges(model, xte, nn.ReLU)
    print(f"  max |input| of each ReLU on the test set: {', '.join(f'{v:.1f}' for v in ranges)}")
    print(f"  test accuracy {zoo.accuracy(model, xte, yte):.4f}")
    zoo.export(model, NAME, torch.from_numpy(xte[:1]))
    zoo.save_fixtures(NAME, xte, yte, zoo.calibration_rows(xtr, 128), 100)


if __name__ == "__main__":
    main()
