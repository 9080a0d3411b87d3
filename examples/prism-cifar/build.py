"""prism-cifar: a CIFAR-10-shaped CNN of the kind PRISM runs under CKKS,
with random weights, to measure what fheserve's engine does with a network
of that size.

PRISM (Elkhatib, Sekmen and Hasan, arXiv 2511.07807) reports 94.4% on
CIFAR-10 at 2.42 s per encrypted sample and 24,000 s per 10,000, with
BatchNorm folded into the weights and Softplus approximated by a degree-4
polynomial. Its layer table was not in the material searchable here (only
the abstract and summaries), so this is the closest stated shape, a
VGG-style stack on a 32x32x3 input:

    Conv2d(3,32,3,pad 1), BatchNorm, Softplus, AvgPool2d(2)      32x32 -> 16x16
    Conv2d(32,64,3,pad 1), BatchNorm, Softplus, AvgPool2d(2)     16x16 -> 8x8
    Conv2d(64,128,3,pad 1), BatchNorm, Softplus, AvgPool2d(2)    8x8 -> 4x4
    Flatten, Linear(2048, 10)

The exact model has Softplus; compiled with --degree 4 each activation is a
degree-4 polynomial fitted to Softplus on its calibrated interval, PRISM's
approximation. The activations come before the pooling, as in the usual
Conv-BN-activation-pool block: the first acts on 32x32x32 = 32,768 values.

No CIFAR-10 is on this machine: the weights are PyTorch's default random
initialization (seed 0), the BatchNorm statistics are those of the
calibration images, and the images are random: smooth random fields (a
random 8x8 image upsampled bilinearly, plus pixel noise) normalized with
CIFAR-10's channel means and deviations. Accuracy means nothing here; the
example measures rings, keys, memory and time.

Writes model.onnx, calib.npy (32 images), test.x.npy (4 images) and
test.out.npy (PyTorch's outputs for them, float64), which the Go test
checks the reference evaluator against.

    /usr/bin/python3 examples/prism-cifar/build.py
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import zoo  # noqa: E402

NAME = "prism-cifar"
CHANNELS = (32, 64, 128)
MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32)


def images(n, rng):
    """n random 32x32 RGB images, smooth with some pixel noise, in [0, 1],
    normalized per channel as CIFAR-10 is."""
    coarse = torch.from_numpy(rng.random((n, 3, 8, 8), dtype=np.float32))
    x = nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False).numpy()
    x = np.clip(x + 0.05 * rng.standard_normal(x.shape, dtype=np.float32), 0, 1)
    return ((x - MEAN[:, None, None]) / STD[:, None, None]).astype(np.float32)


def network():
    layers, c = [], 3
    for out in CHANNELS:
        layers += [nn.Conv2d(c, out, 3, padding=1), nn.BatchNorm2d(out), nn.Softplus(), nn.AvgPool2d(2)]
        c = out
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * 4 * 4, 10))


def main():
    zoo.setup()
    rng = np.random.default_rng(0)
    model = network()
    calib, test = images(32, rng), images(4, rng)
    # BatchNorm statistics from the calibration images (a cumulative
    # average over one pass), so that each block's activations are
    # normalized as in a trained network.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(calib))
    model.eval()
    out = zoo.predict(model, test).astype(np.float64)
    print(f"  outputs of the test images: range [{out.min():.3f}, {out.max():.3f}]")
    zoo.export(model, NAME, torch.from_numpy(test[:1]))
    zoo.save(NAME, "calib.npy", calib)
    zoo.save(NAME, "test.x.npy", test)
    zoo.save(NAME, "test.out.npy", out, "<f8")


if __name__ == "__main__":
    main()
