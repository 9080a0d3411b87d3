"""tenseal-tutorial: the ConvNet of TenSEAL's "Tutorial 4 - Encrypted
Convolution on MNIST", trained on Fashion-MNIST (no MNIST here), so that
fheserve and TenSEAL's algorithm can be compared on TenSEAL's own network.

Conv2d(1, 4, kernel 7, stride 3), x*x, Flatten (4 x 8 x 8 = 256),
Linear(256, 64), x*x, Linear(64, 10): the tutorial's layers, in its order
(its view(-1, 256) is the Flatten). Trained as the tutorial does: Adam at
lr 1e-3, batch 64, 10 epochs (here with the zoo's cosine decay), on
Fashion-MNIST normalized as the other Fashion-MNIST examples. The last
layer is then divided by 8 so that the logits fit TenSEAL's parameters
(see below).

    /usr/bin/python3 examples/tenseal-tutorial/train.py
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import zoo  # noqa: E402

NAME = "tenseal-tutorial"
LOGIT_DIVISOR = 8


def main():
    zoo.setup(73)  # the tutorial's seed
    # One thread: the network is so small that two threads only wait on
    # each other (on a loaded machine, 20 times the CPU time).
    torch.set_num_threads(1)
    xtr, ytr, xte, yte = zoo.fashion()
    model = nn.Sequential(
        nn.Conv2d(1, 4, kernel_size=7, padding=0, stride=3), zoo.Square(),
        nn.Flatten(), nn.Linear(256, 64), zoo.Square(),
        nn.Linear(64, 10))
    zoo.train(model, xtr, ytr, xte, yte, epochs=10, lr=1e-3, batch=64, clip=0)
    print(f"  test accuracy {zoo.accuracy(model, xte, yte):.4f}, "
          f"largest |logit| {np.abs(zoo.predict(model, xte)).max():.1f}")
    # TenSEAL's parameters decode the logits at scale 2^26 in a 31-bit
    # modulus, so they must stay well inside +-16: the last layer is
    # divided by LOGIT_DIVISOR (a softmax temperature; the classes are the
    # same).
    with torch.no_grad():
        model[-1].weight /= LOGIT_DIVISOR
        model[-1].bias /= LOGIT_DIVISOR
    print(f"  test accuracy {zoo.accuracy(model, xte, yte):.4f} after dividing the logits by {LOGIT_DIVISOR}")
    logits = zoo.predict(model, xte)
    print(f"  largest |logit| on the test set {np.abs(logits).max():.1f}, "
          f"99.9th percentile {np.percentile(np.abs(logits), 99.9):.1f}")
    zoo.export(model, NAME, torch.from_numpy(xte[:1]))
    zoo.save_fixtures(NAME, xte, yte, zoo.calibration_rows(xtr, 128), 100)


if __name__ == "__main__":
    main()
