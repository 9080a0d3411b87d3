"""Build the small PyTorch-exported ONNX models that fheserve's importer and
encrypted-evaluation tests run, with a sample input and PyTorch's output.

Run from anywhere with the system Python, which has torch and onnx:

    /usr/bin/python3 testdata/gen/make_fixtures.py

For each fixture NAME it writes testdata/onnx/NAME.onnx, NAME.x.npy (float32
input, a batch of 4) and NAME.y.npy (float32 PyTorch output for that input,
model in eval mode); activation fixtures also get NAME.calib.npy (64 rows).
Every fixture seeds its own generator, so the files do not depend on the
order in which fixtures are built.
"""

import os
import sys

import numpy as np
import onnx
import torch
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "onnx")
BATCH = 4


class Square(nn.Module):
    def forward(self, x):
        return x * x


class MatMul(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(16, 4) * 0.25)

    def forward(self, x):
        return torch.matmul(x, self.w)


class AddBias(nn.Module):
    def __init__(self):
        super().__init__()
        self.b = nn.Parameter(torch.randn(16))

    def forward(self, x):
        return x + self.b


class SubConst(nn.Module):
    # A Python scalar: exported as a Constant node.
    def forward(self, x):
        return x - 0.75


class MulConst(nn.Module):
    # A per-feature tensor: exported as an initializer.
    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.linspace(-1.5, 1.5, 16))

    def forward(self, x):
        return x * self.scale


class Pow3(nn.Module):
    def forward(self, x):
        return torch.pow(x, 3)


class FlattenReshape(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 4)

    def forward(self, x):
        return self.fc(x.view(x.size(0), -1))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin1 = nn.Linear(16, 8)
        self.lin2 = nn.Linear(8, 16)

    def forward(self, x):
        h = self.lin1(x)
        return self.lin2(h * h) + x


def randomize_bn(bn):
    """Give a batch norm layer statistics and affine parameters far enough
    from the identity that an importer which drops or mis-folds it fails."""
    n = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(n) * 0.5)
        bn.running_var.copy_(torch.rand(n) * 1.5 + 0.5)
        bn.weight.copy_(torch.rand(n) + 0.5)
        bn.bias.copy_(torch.randn(n) * 0.3)
    return bn


def act_model(act):
    return lambda: nn.Sequential(nn.Linear(8, 8), act, nn.Linear(8, 4))


def normal(shape, scale=1.0):
    return lambda g: torch.randn(shape, generator=g) * scale


def uniform(shape):
    return lambda g: torch.rand(shape, generator=g) * 2 - 1


# name: (seed, model builder, input sampler, whether to write calibration rows)
# torch.onnx.export folds a BatchNorm2d that follows a Conv into the Conv's
# weights in eval mode; conv_bn is exported with TrainingMode.PRESERVE (the
# model is still in eval mode) so that its BatchNormalization node stays.
FIXTURES = {
    "gemm": (1, lambda: nn.Linear(16, 4), normal((16,)), False),
    "matmul": (2, MatMul, normal((16,)), False),
    "add_bias": (3, AddBias, normal((16,)), False),
    "sub_const": (4, SubConst, normal((16,)), False),
    "mul_const": (5, MulConst, normal((16,)), False),
    "square": (6, Square, normal((16,)), False),
    "pow3": (7, Pow3, normal((16,), 0.5), False),
    "conv": (8, lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), normal((2, 8, 8)), False),
    "conv_bn": (9, lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), randomize_bn(nn.BatchNorm2d(3))),
                normal((2, 8, 8)), False),
    "avgpool": (10, lambda: nn.AvgPool2d(2), normal((2, 8, 8)), False),
    "global_avgpool": (11, lambda: nn.AdaptiveAvgPool2d(1), normal((2, 8, 8)), False),
    "flatten_reshape": (12, FlattenReshape, normal((2, 4, 4)), False),
    "residual": (13, Residual, normal((16,), 0.5), False),
    "dropout_identity": (14, lambda: nn.Sequential(nn.Linear(16, 8), nn.Dropout(0.5), nn.Linear(8, 4)),
                         normal((16,)), False),
    "relu": (15, act_model(nn.ReLU()), uniform((8,)), True),
    "sigmoid": (16, act_model(nn.Sigmoid()), uniform((8,)), True),
    "tanh": (17, act_model(nn.Tanh()), uniform((8,)), True),
    "softplus": (18, act_model(nn.Softplus()), uniform((8,)), True),
    "silu": (19, act_model(nn.SiLU()), uniform((8,)), True),
    "gelu": (20, act_model(nn.GELU()), uniform((8,)), True),
    "bn_dense": (21, lambda: nn.Sequential(nn.Linear(16, 8), randomize_bn(nn.BatchNorm1d(8))),
                 normal((16,)), False),
    "softmax_head": (22, lambda: nn.Sequential(nn.Linear(16, 4), nn.Softmax(dim=1)), normal((16,)), False),
    "sigmoid_head": (23, lambda: nn.Sequential(nn.Linear(16, 1), nn.Sigmoid()), normal((16,)), False),
    "maxpool": (24, lambda: nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.MaxPool2d(2)),
                normal((2, 8, 8)), False),
    "mlp_square": (25, lambda: nn.Sequential(nn.Linear(16, 8), Square(), nn.Linear(8, 4)), normal((16,)), False),
    "cnn_square": (26, lambda: nn.Sequential(nn.Conv2d(1, 2, 3), Square(), nn.Flatten(), nn.Linear(72, 4)),
                   normal((1, 8, 8)), False),
    # Conv1d is imported as a Conv2d over [N, C, 1, L]: strides, pads,
    # dilations; cnn1d keeps its BatchNorm1d (folded through the reshape).
    "conv1d": (27, lambda: nn.Conv1d(2, 3, 3, stride=2, padding=1), normal((2, 16)), False),
    "cnn1d": (28, lambda: nn.Sequential(nn.Conv1d(1, 4, 3, padding=2, dilation=2), randomize_bn(nn.BatchNorm1d(4)),
                                        Square(), nn.Flatten(), nn.Linear(64, 4)),
              normal((1, 16), 0.5), False),
}

KEEP_BN = {"conv_bn", "cnn1d"}

# Models the importer refuses, written to testdata/onnx/refused/ (away from
# the fixtures every encrypted test runs): name: (seed, model builder,
# input sampler).
REFUSED = {
    # Exported below opset 17 as ReduceMean, Sub, Pow, ReduceMean, Add,
    # Sqrt, Div, Mul, Add.
    "layernorm": (29, lambda: nn.Sequential(nn.Linear(16, 8), nn.LayerNorm(8), nn.Linear(8, 4)), normal((16,))),
}


def build(name, seed, make_model, sample, calib, out=OUT):
    torch.manual_seed(seed)
    model = make_model().eval()
    g = torch.Generator().manual_seed(1000 + seed)
    x = torch.stack([sample(g) for _ in range(BATCH)])
    with torch.no_grad():
        y = model(x)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name + ".onnx")
    kw = {"training": torch.onnx.TrainingMode.PRESERVE, "do_constant_folding": False} if name in KEEP_BN else {}
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=13, **kw)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    np.save(os.path.join(out, name + ".x.npy"), x.numpy().astype("<f4"))
    np.save(os.path.join(out, name + ".y.npy"), y.numpy().astype("<f4"))
    if calib:
        c = torch.stack([sample(g) for _ in range(64)])
        np.save(os.path.join(out, name + ".calib.npy"), c.numpy().astype("<f4"))
    ops = " ".join(n.op_type for n in m.graph.node)
    amax = float(y.abs().max())
    print(f"{name:17s} x{list(x.shape)} y{list(y.shape)} max|y|={amax:.3f} ops: {ops}")
    if amax > 10:
        sys.exit(f"{name}: output {amax} outside [-10, 10]")


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    names = sys.argv[1:] or list(FIXTURES) + list(REFUSED)
    for name in names:
        if name in REFUSED:
            build(name, *REFUSED[name], False, out=os.path.join(OUT, "refused"))
        else:
            build(name, *FIXTURES[name])


if __name__ == "__main__":
    main()
