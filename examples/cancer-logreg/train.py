"""cancer-logreg: logistic regression on scikit-learn's breast cancer table,
the medical and financial scoring case.

Trained with scikit-learn (StandardScaler + LogisticRegression) and
exported through PyTorch, since skl2onnx is not available offline: the
scaler is folded into the weights, so the model takes the 30 raw features
and the client needs no preprocessing. The output is P(benign); the
sigmoid runs on the client after decryption (the plan's head).

    /usr/bin/python3 examples/cancer-logreg/train.py
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from torch import nn  # noqa: E402

import zoo  # noqa: E402

NAME = "cancer-logreg"


def main():
    zoo.setup()
    xtr, ytr, xte, yte = zoo.cancer()
    scaler = StandardScaler().fit(xtr)
    clf = LogisticRegression(C=0.1, max_iter=1000).fit(scaler.transform(xtr), ytr)
    print(f"  scikit-learn: train {clf.score(scaler.transform(xtr), ytr):.4f}, "
          f"test {clf.score(scaler.transform(xte), yte):.4f} on {len(xte)} rows")

    # w.(x - mean)/std + b = (w/std).x + (b - w.mean/std)
    w = clf.coef_[0] / scaler.scale_
    b = clf.intercept_[0] - float(w @ scaler.mean_)
    model = nn.Sequential(nn.Linear(30, 1), nn.Sigmoid())
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(w[None, :]))
        model[0].bias.fill_(b)
    print(f"  exported model: test {zoo.accuracy(model, xte, yte):.4f}")
    zoo.export(model, NAME, torch.from_numpy(xte[:1]))
    zoo.save_fixtures(NAME, xte, yte, zoo.calibration_rows(xtr, 128), len(xte))


if __name__ == "__main__":
    main()
