"""Write the full test sets of the examples to examples/data (gitignored):
the arrays are regenerated from local data rather than committed.

    /usr/bin/python3 examples/make_testsets.py

    examples/data/fmnist.x.npy  [10000,1,28,28] float32  Fashion-MNIST test images, normalized
    examples/data/fmnist.y.npy  [10000] int64            their classes
    examples/data/cancer.*      [143,30]                 breast cancer test split, raw features
    examples/data/digits.*      [540,64]                 8x8 digits test split, pixels in [0,1]
    examples/data/faces.*       [2000,128]               synthetic face-embedding queries

Each example's train.py uses the same splits and preprocessing (zoo.py).
"""

import zoo


def main():
    _, _, xte, yte = zoo.fashion()
    zoo.save_testset("fmnist", xte, yte)
    _, _, xte, yte = zoo.cancer()
    zoo.save_testset("cancer", xte, yte)
    _, _, xte, yte = zoo.digits()
    zoo.save_testset("digits", xte, yte)
    _, _, queries, ids = zoo.faces()
    zoo.save_testset("faces", queries, ids)


if __name__ == "__main__":
    main()
