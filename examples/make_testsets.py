"""Write the full test sets of the examples to examples/data (gitignored):
the arrays are regenerated from local data rather than committed.

    /usr/bin/python3 examples/make_testsets.py

    examples/data/fmnist.x.npy  [10000,1,28,28] float32  Fashion-MNIST test images, normalized
    examples/data/fmnist.y.npy  [10000] int64            their classes
    examples/data/fmnist.calib.npy [512,1,28,28]         512 training images, for calibration
    examples/data/cancer.*      [143,30]                 breast cancer test split, raw features
    examples/data/digits.*      [540,64]                 8x8 digits test split, pixels in [0,1]
    examples/data/faces.*       [2000,128]               synthetic face-embedding queries

Each example's train.py uses the same splits and preprocessing (zoo.py).
The committed calib.npy of each Fashion-MNIST example has 128 training
images, enough for the Go test; the full-set figures calibrate on 512 (the
most the compiler uses), which capture the rare large activations and
outputs of 10,000 test images better.
"""

import os

import numpy as np

import zoo


def main():
    xtr, _, xte, yte = zoo.fashion()
    zoo.save_testset("fmnist", xte, yte)
    calib = zoo.calibration_rows(xtr, 512, seed=1)
    np.save(os.path.join(zoo.DATA, "fmnist.calib.npy"), np.ascontiguousarray(calib, dtype="<f4"))
    print(f"  wrote examples/data/fmnist.calib.npy {list(calib.shape)}")
    _, _, xte, yte = zoo.cancer()
    zoo.save_testset("cancer", xte, yte)
    _, _, xte, yte = zoo.digits()
    zoo.save_testset("digits", xte, yte)
    _, _, queries, ids = zoo.faces()
    zoo.save_testset("faces", queries, ids)


if __name__ == "__main__":
    main()
