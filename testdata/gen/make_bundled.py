"""Train and export the models that `fheserve bench` and `fheserve demo` run
from the binary (package bundled), with sample inputs, labels and
calibration rows.

    /usr/bin/python3 testdata/gen/make_bundled.py            # all
    /usr/bin/python3 testdata/gen/make_bundled.py mlp cnn    # some

Uses only local data: scikit-learn's bundled breast cancer table and the
Fashion-MNIST idx files in /usr/share/datasets/fashion-mnist. Seeds are
fixed; on the same machine and versions a rerun gives the same models.
For each NAME it writes bundled/NAME.onnx, NAME.x.npy (float32 inputs),
NAME.y.npy (int64 labels) and NAME.calib.npy (64 float32 training rows),
and prints the plaintext accuracy that bundled/README.md quotes.
"""

import json
import os
import sys
import time

import numpy as np
import onnx
import torch
from torch import nn

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "bundled")
# Fashion-MNIST is read and normalized as the examples read it (the same
# mean and std), so that one test set serves every Fashion-MNIST model.
sys.path.insert(0, os.path.join(ROOT, "examples"))
from zoo import fashion  # noqa: E402


class Square(nn.Module):
    def forward(self, x):
        return x * x


FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def export(model, x, name, labels=None):
    path = os.path.join(OUT, name + ".onnx")
    model.eval()
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=13)
    m = onnx.load(path)
    if labels:
        # The outputs' names, which a deployment takes (nn/onnx.LabelsKey).
        onnx.helper.set_model_props(m, {"labels": json.dumps(labels)})
        onnx.save(m, path)
    onnx.checker.check_model(m)
    print(f"  {name}.onnx: {os.path.getsize(path)} bytes, ops: {' '.join(n.op_type for n in m.graph.node)}")


def save(name, x, y, calib):
    np.save(os.path.join(OUT, name + ".x.npy"), np.ascontiguousarray(x, dtype="<f4"))
    np.save(os.path.join(OUT, name + ".y.npy"), np.ascontiguousarray(y, dtype="<i8"))
    np.save(os.path.join(OUT, name + ".calib.npy"), np.ascontiguousarray(calib, dtype="<f4"))


def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out = model(torch.from_numpy(x[i:i + batch]))
            pred = (out[:, 0] > 0.5).long() if out.shape[1] == 1 else out.argmax(1)
            correct += int((pred.numpy() == y[i:i + batch]).sum())
    return correct / len(x)


def logreg():
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    xtr, xte, ytr, yte = train_test_split(data.data, data.target, test_size=0.25, random_state=0,
                                          stratify=data.target)
    mean, std = xtr.mean(0), xtr.std(0)
    xtr = ((xtr - mean) / std).astype(np.float32)
    xte = ((xte - mean) / std).astype(np.float32)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 1), nn.Sigmoid())
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-3)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr.astype(np.float32))
    for _ in range(500):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy(model(xt)[:, 0], yt)
        loss.backward()
        opt.step()
    acc = accuracy(model, xte, yte)
    print(f"  train {accuracy(model, xtr, ytr):.4f}, test {acc:.4f} on {len(xte)} rows")
    export(model, torch.from_numpy(xte[:1]), "logreg")
    rng = np.random.default_rng(0)
    save("logreg", xte, yte, xtr[rng.choice(len(xtr), 64, replace=False)])
    return acc


def shrink_init(model, factor):
    # x*x activations square the scale of each layer's output; smaller
    # initial weights keep early activations near 1 so training does not
    # diverge.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(factor)


def train_fashion(name, model, epochs):
    xtr, ytr, xte, yte = fashion()
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * (len(xtr) // 128))
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt) - 127, 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
        print(f"  epoch {epoch + 1}: loss {loss.item():.3f}, test {accuracy(model, xte, yte):.4f}")
    acc = accuracy(model, xte, yte)
    print_ranges(model, xte)
    export(model, xt[:1], name, FASHION_CLASSES)
    rng = np.random.default_rng(0)
    # The first 256 test images, so the sample is the same for every model.
    save(name, xte[:256], yte[:256], xtr[rng.choice(len(xtr), 64, replace=False)])
    print(f"  accuracy on the 256 stored samples: {accuracy(model, xte[:256], yte[:256]):.4f}")
    return acc


def print_ranges(model, x):
    """Print the largest magnitude entering each x*x and leaving the model on
    x: what CKKS scales and the compiler's calibration must accommodate."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(float(i[0].abs().max())))
             for m in model if isinstance(m, Square)]
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    for h in hooks:
        h.remove()
    print(f"  max |input| of each x*x: {', '.join(f'{v:.1f}' for v in seen)}; max |output| {float(out.abs().max()):.1f}")


def mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), Square(), nn.Linear(128, 10))
    shrink_init(model, 0.5)
    return train_fashion("mlp", model, epochs=8)


def cnn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 5, 5, stride=2), Square(), nn.Flatten(),
                          nn.Linear(720, 64), Square(), nn.Linear(64, 10))
    shrink_init(model, 0.5)
    return train_fashion("cnn", model, epochs=8)


def match():
    """Synthetic face-embedding matcher: no face data is available offline."""
    rng = np.random.default_rng(0)
    dim, n = 128, 4096

    def unit(v):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    # Real embeddings are not isotropic: identities lie closer to a
    # low-dimensional subspace, which makes impostor scores spread wider.
    spectrum = 1 / np.sqrt(np.arange(1, dim + 1))
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    identities = unit((rng.standard_normal((n, dim)) * spectrum) @ basis.T)
    noise = 0.075  # per-coordinate; genuine cosine similarity about 0.6

    def capture(ids):
        return unit(identities[ids] + noise * rng.standard_normal((len(ids), dim)))

    templates = capture(np.arange(n)).astype(np.float32)
    model = nn.Linear(dim, n, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(templates))

    test_ids = rng.permutation(n)
    test = capture(test_ids).astype(np.float32)
    acc = accuracy(model, test, test_ids)
    scores = test @ templates.T
    own = np.zeros_like(scores, dtype=bool)
    own[np.arange(n), test_ids] = True
    genuine, impostor = scores[own], scores[~own]
    best_impostor = np.where(own, -1, scores).max(1)
    print(f"  cosine similarity: genuine {genuine.mean():.3f} ± {genuine.std():.3f}, "
          f"impostor {impostor.mean():.3f} ± {impostor.std():.3f}, "
          f"best impostor per query {best_impostor.mean():.3f} ± {best_impostor.std():.3f}")
    print(f"  top-1 identification on {n} queries: {acc:.4f}")
    export(model, torch.from_numpy(test[:1]), "match")
    calib_ids = rng.choice(n, 64, replace=False)
    save("match", test[:64], test_ids[:64], capture(calib_ids))
    print(f"  accuracy on the 64 stored queries: {accuracy(model, test[:64], test_ids[:64]):.4f}")
    return acc


WORKLOADS = {"logreg": logreg, "mlp": mlp, "cnn": cnn, "match": match}


def main():
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    for name in sys.argv[1:] or list(WORKLOADS):
        start = time.process_time()
        print(f"{name}:")
        acc = WORKLOADS[name]()
        print(f"  test accuracy {acc:.4f}, {time.process_time() - start:.0f} s CPU")


if __name__ == "__main__":
    main()
