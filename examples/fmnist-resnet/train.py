"""fmnist-resnet: a small residual CNN for Fashion-MNIST with BatchNorm and
x*x activations, exact under encryption.

Stem: Conv2d(1, 8, 3, stride 2, padding 1), BatchNorm, Square (8x14x14).
One residual block: Conv2d(8, 8, 3, padding 1), BatchNorm, Square,
Conv2d(8, 8, 3, padding 1), BatchNorm, added to the block's input, Square.
Head: AvgPool2d(2), Flatten, Linear(392, 10).

The Add joins two computed branches (the block's input and its output), the
shape the importer turns into a Combine and the compiler into one ciphertext
addition. BatchNorm folds into the convolution before it; the stride-2 stem
keeps the feature maps at 1,568 values, so that latency packing fits the
2^14 or 2^15 ring. Inputs are [N,1,28,28] normalized as the other
Fashion-MNIST examples.

    /usr/bin/python3 examples/fmnist-resnet/train.py
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import zoo  # noqa: E402

NAME = "fmnist-resnet"
C = 8


class Block(nn.Module):
    """Square(x + BN(Conv(Square(BN(Conv(x))))))."""

    def __init__(self, c):
        super().__init__()
        self.branch = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), zoo.Square(),
            nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))

    def forward(self, x):
        h = x + self.branch(x)
        return h * h


def main():
    zoo.setup()
    # One thread: the model is small, and on a shared machine a second
    # thread mostly waits for the first.
    torch.set_num_threads(1)
    xtr, ytr, xte, yte = zoo.fashion()
    model = nn.Sequential(
        nn.Conv2d(1, C, 3, stride=2, padding=1), nn.BatchNorm2d(C), zoo.Square(),
        Block(C),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(C * 7 * 7, 10))
    zoo.train(model, xtr, ytr, xte, yte, epochs=int(os.environ.get("EPOCHS", "2")), lr=2e-3, augment=zoo.hflip)
    print(f"  largest |input| of the squares: {zoo.input_ranges(model, xte[:1000], (zoo.Square,))}")
    print(f"  test accuracy {zoo.accuracy(model, xte, yte):.4f}")
    zoo.export(model, NAME, torch.from_numpy(xte[:1]))
    zoo.save_fixtures(NAME, xte, yte, zoo.calibration_rows(xtr, 128), 100)


if __name__ == "__main__":
    main()
