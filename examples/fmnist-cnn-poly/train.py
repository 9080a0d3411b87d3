"""fmnist-cnn-poly: a deeper Fashion-MNIST CNN trained with learnable
degree-2 polynomial activations, exact under encryption.

Conv2d(1,16,5), AvgPool2d(2), BatchNorm, Quad, Conv2d(16,64,5), AvgPool2d(2),
BatchNorm, Quad, Flatten, Linear(1024,128), BatchNorm, Quad, Linear(128,10).

Quad is a per-channel a*x^2 + b*x + c with learned a, b, c, in the spirit of
PRISM's trainable polynomial activations but of degree 2: one level each,
where degree 3 or 4 would cost two or three. For export it is written as
a*(x + beta)^2 + gamma with beta = b/(2a), gamma = c - a*beta^2: the shift
folds into the layer before and the scale and offset into the layer after,
so that only the square remains and the whole network has depth 7 (four
linear steps, three squares), within the 2^14 ring without bootstrapping.
Average pooling comes before each activation: it fuses with the
convolution into one linear step and divides the number of squares (the
ciphertext products of batch packing) by four. BatchNorm folds into the
convolutions and keeps the inputs of the squares near unit scale, which
keeps training stable.

Inputs are [N,1,28,28] normalized as the other Fashion-MNIST examples.

    /usr/bin/python3 examples/fmnist-cnn-poly/train.py
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import zoo  # noqa: E402

NAME = "fmnist-cnn-poly"
C1, C2, HIDDEN = 16, 64, 128


class Quad(nn.Module):
    """a*x^2 + b*x + c per channel, learned; near the identity at first."""

    def __init__(self, channels, spatial=True):
        super().__init__()
        shape = (1, channels, 1, 1) if spatial else (1, channels)
        self.a = nn.Parameter(torch.full(shape, 0.1))
        self.b = nn.Parameter(torch.ones(shape))
        self.c = nn.Parameter(torch.zeros(shape))
        self.exporting = False

    def forward(self, x):
        if not self.exporting:
            return self.a * x * x + self.b * x + self.c
        # The HE-friendly form: one square between two affine maps.
        beta = self.b / (2 * self.a)
        t = x + beta
        return self.a * (t * t) + (self.c - self.a * beta * beta)


def main():
    zoo.setup()
    xtr, ytr, xte, yte = zoo.fashion()
    model = nn.Sequential(
        nn.Conv2d(1, C1, 5), nn.AvgPool2d(2), nn.BatchNorm2d(C1), Quad(C1),
        nn.Conv2d(C1, C2, 5), nn.AvgPool2d(2), nn.BatchNorm2d(C2), Quad(C2),
        nn.Flatten(), nn.Linear(C2 * 4 * 4, HIDDEN), nn.BatchNorm1d(HIDDEN), Quad(HIDDEN, spatial=False),
        nn.Linear(HIDDEN, 10))
    zoo.train(model, xtr, ytr, xte, yte, epochs=12, lr=2e-3, augment=zoo.hflip)
    quads = [m for m in model.modules() if isinstance(m, Quad)]
    for i, q in enumerate(quads):
        a = q.a.detach().abs()
        print(f"  Quad {i + 1}: |a| in [{a.min():.3f}, {a.max():.3f}], "
              f"|b/2a| up to {(q.b.detach() / (2 * q.a.detach())).abs().max():.1f}")
    acc = zoo.accuracy(model, xte, yte)
    for q in quads:
        q.exporting = True
    exported = zoo.accuracy(model, xte, yte)
    print(f"  test accuracy {acc:.4f} (export form {exported:.4f})")
    zoo.export(model, NAME, torch.from_numpy(xte[:1]))
    zoo.save_fixtures(NAME, xte, yte, zoo.calibration_rows(xtr, 128), 100)


if __name__ == "__main__":
    main()
