"""Shared helpers for the example models' train.py scripts: data loading,
training, ONNX export and the files each example writes.

Every example writes, next to its train.py:

    model.onnx    opset 13, input "input" with a dynamic batch axis
    calib.npy     float32 training rows for `fheserve compile --calibration`
    test.x.npy    a small float32 test fixture (the Go test runs a few rows)
    test.y.npy    its int64 labels

make_testsets.py writes the full test sets, with the same splits and
preprocessing, to examples/data (gitignored).

Only local data is used: scikit-learn's bundled tables and the
Fashion-MNIST idx files of Debian's dataset-fashion-mnist. Seeds are fixed,
torch uses two threads, and a rerun on the same machine gives the same
model.
"""

import gzip
import os
import time

import numpy as np
import onnx
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
FASHION = "/usr/share/datasets/fashion-mnist"
# The normalization of the bundled Fashion-MNIST models, so that one test
# set (examples/data/fmnist.x.npy) serves every Fashion-MNIST model.
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530


def setup(seed=0):
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    np.random.seed(seed)


def out_path(example, name):
    return os.path.join(HERE, example, name)


def export(model, example, x):
    """Write EXAMPLE/model.onnx (opset 13, dynamic batch) and check it."""
    path = out_path(example, "model.onnx")
    model.eval()
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=13)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    ops = " ".join(n.op_type for n in m.graph.node)
    print(f"  model.onnx: {os.path.getsize(path)} bytes, ops: {ops}")


def save(example, name, a, dtype="<f4"):
    np.save(out_path(example, name), np.ascontiguousarray(a, dtype=dtype))


def save_fixtures(example, xte, yte, calib, n_test):
    """Write calib.npy and the first n_test test rows as test.x/test.y."""
    save(example, "calib.npy", calib)
    save(example, "test.x.npy", xte[:n_test])
    save(example, "test.y.npy", yte[:n_test], "<i8")


def save_testset(name, x, y):
    """Write the full test set to examples/data (not committed)."""
    os.makedirs(DATA, exist_ok=True)
    np.save(os.path.join(DATA, name + ".x.npy"), np.ascontiguousarray(x, dtype="<f4"))
    np.save(os.path.join(DATA, name + ".y.npy"), np.ascontiguousarray(y, dtype="<i8"))
    print(f"  wrote examples/data/{name}.x.npy {list(x.shape)} and {name}.y.npy")


def predict(model, x, batch=1000):
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            outs.append(model(torch.from_numpy(x[i:i + batch])).numpy())
    return np.concatenate(outs)


def accuracy(model, x, y):
    out = predict(model, x)
    pred = (out[:, 0] > 0.5).astype(np.int64) if out.shape[1] == 1 else out.argmax(1)
    return float((pred == y).mean())


def calibration_rows(x, n=128, seed=0):
    """n training rows drawn at random: what the compiler fits intervals to."""
    rng = np.random.default_rng(seed)
    return x[rng.choice(len(x), n, replace=False)]


# ---- scikit-learn tables ----

def cancer():
    """Breast cancer (569 rows, 30 raw features; label 1 benign), split
    75/25 stratified with random_state=0, as the bundled logreg."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    d = load_breast_cancer()
    xtr, xte, ytr, yte = train_test_split(d.data, d.target, test_size=0.25, random_state=0, stratify=d.target)
    return xtr.astype(np.float32), ytr.astype(np.int64), xte.astype(np.float32), yte.astype(np.int64)


def digits():
    """8x8 digits (1797 images, pixels 0-16) scaled to [0, 1], split 70/30
    stratified with random_state=0."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data / 16).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=0.3, random_state=0, stratify=d.target)
    return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)


# ---- synthetic face embeddings ----

def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def faces(identities=1000, dim=128, queries=2, noise=0.075, seed=0):
    """Synthetic face embeddings: no face data is available offline.

    Identities are unit vectors in dim dimensions drawn from an anisotropic
    Gaussian (variance decaying as 1/i in a random basis), since real
    embeddings (ArcFace, FaceNet) are not isotropic. An enrolment template
    or a query is its identity plus Gaussian noise, renormalized. Returns
    the templates [identities, dim], calibration queries, and test queries
    with their identity labels."""
    rng = np.random.default_rng(seed)
    spectrum = 1 / np.sqrt(np.arange(1, dim + 1))
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    ids = unit((rng.standard_normal((identities, dim)) * spectrum) @ basis.T)

    def capture(who):
        return unit(ids[who] + noise * rng.standard_normal((len(who), dim))).astype(np.float32)

    templates = capture(np.arange(identities))
    calib_ids = rng.choice(identities, 128, replace=False)
    calib = capture(calib_ids)
    test_ids = np.tile(np.arange(identities), queries)
    test_ids = test_ids[rng.permutation(len(test_ids))]
    return templates, calib, capture(test_ids), test_ids.astype(np.int64)


# ---- Fashion-MNIST ----

def read_idx(name):
    with gzip.open(os.path.join(FASHION, name)) as f:
        b = f.read()
    ndim = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(b, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion():
    """Training and test images [N,1,28,28], normalized, and labels."""
    def images(name):
        x = read_idx(name).astype(np.float32) / 255
        return ((x - FASHION_MEAN) / FASHION_STD)[:, None, :, :]

    return (images("train-images-idx3-ubyte.gz"), read_idx("train-labels-idx1-ubyte.gz").astype(np.int64),
            images("t10k-images-idx3-ubyte.gz"), read_idx("t10k-labels-idx1-ubyte.gz").astype(np.int64))


def train(model, xtr, ytr, xte, yte, epochs, lr=1e-3, batch=128, clip=1.0, weight_decay=0.0, augment=None):
    """Adam with cosine decay and gradient clipping; prints test accuracy
    after each epoch."""
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * (len(xtr) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    start = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=g)
        total, count = 0.0, 0
        for i in range(0, len(xt) - batch + 1, batch):
            idx = perm[i:i + batch]
            xb = xt[idx]
            if augment is not None:
                xb = augment(xb, g)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yt[idx])
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
            total, count = total + loss.item(), count + 1
        print(f"  epoch {epoch + 1}: loss {total / count:.3f}, test {accuracy(model, xte, yte):.4f}, "
              f"{time.time() - start:.0f} s", flush=True)
    model.eval()
    return model


def hflip(xb, g):
    """Random horizontal flips: Fashion-MNIST items are left-right symmetric
    enough for this to help."""
    flip = torch.rand(len(xb), generator=g) < 0.5
    xb = xb.clone()
    xb[flip] = xb[flip].flip(-1)
    return xb


class Square(nn.Module):
    def forward(self, x):
        return x * x


def input_ranges(model, x, kinds):
    """Largest |input| of each module of the given kinds on x, in order:
    what the compiler's calibration and the CKKS scales must hold."""
    mods = [m for m in model.modules() if isinstance(m, kinds)]
    seen = [0.0] * len(mods)

    def hook(k):
        def f(m, i, o):
            seen[k] = max(seen[k], float(i[0].abs().max()))
        return f

    hooks = [m.register_forward_hook(hook(k)) for k, m in enumerate(mods)]
    predict(model, x)
    for h in hooks:
        h.remove()
    return seen
