"""Networks trained as anyone would, with no thought of encryption, to test
that the compiler's default activation approximations (chosen from the
calibration data alone) keep their classes: ReLU and GELU, BatchNorm,
stride-2 convolutions, global average pooling. None of them is tuned for
fheserve, and no compiler setting was chosen with them in view.

    /usr/bin/python3 compiler/testdata/unseen/train.py

Each NAME gets NAME.onnx, NAME.calib.npy (128 training rows), NAME.x.npy
(test rows) and NAME.y.npy (PyTorch's float32 outputs on them, the oracle
that the plaintext reference evaluator is checked against).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "examples"))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import zoo  # noqa: E402


def write(name, model, calib, xte, n_test):
    model.eval()
    path = os.path.join(HERE, name + ".onnx")
    torch.onnx.export(model, torch.from_numpy(xte[:1]), path, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=13)
    onnx.checker.check_model(onnx.load(path))
    x = np.ascontiguousarray(xte[:n_test], dtype="<f4")
    np.save(os.path.join(HERE, name + ".calib.npy"), np.ascontiguousarray(calib, dtype="<f4"))
    np.save(os.path.join(HERE, name + ".x.npy"), x)
    np.save(os.path.join(HERE, name + ".y.npy"), np.ascontiguousarray(zoo.predict(model, x), dtype="<f4"))
    print(f"{name}: {os.path.getsize(path)} bytes")


def main():
    zoo.setup(7)
    xtr, ytr, xte, yte = zoo.fashion()
    sub = np.random.default_rng(7).choice(len(xtr), 20000, replace=False)
    relu_cnn = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(6, 12, 3), nn.BatchNorm2d(12), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(12 * 6 * 6, 10))
    zoo.train(relu_cnn, xtr[sub], ytr[sub], xte, yte, epochs=3, lr=2e-3)
    write("fmnist-relu-bn", relu_cnn, zoo.calibration_rows(xtr, 128, seed=7), xte, 256)

    dtr, dytr, dte, dyte = zoo.digits()
    img = lambda a: a.reshape(-1, 1, 8, 8)  # noqa: E731
    stride2 = nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    zoo.train(stride2, img(dtr), dytr, img(dte), dyte, epochs=40, lr=3e-3, batch=64)
    write("digits-stride2", stride2, zoo.calibration_rows(img(dtr), 128, seed=7), img(dte), 540)

    gelu = nn.Sequential(nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 32), nn.GELU(), nn.Linear(32, 10))
    zoo.train(gelu, dtr, dytr, dte, dyte, epochs=40, lr=3e-3, batch=64)
    write("digits-gelu", gelu, zoo.calibration_rows(dtr, 128, seed=7), dte, 540)


if __name__ == "__main__":
    main()
