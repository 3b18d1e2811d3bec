#!/usr/bin/python3
"""PyTorch reference for the activations (see common.py)."""
import torch
import torch.nn.functional as F

from common import grads, save, seeded

seeded(1)
fns = {
    "relu": F.relu,
    "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid,
    "gelu": lambda x: F.gelu(x, approximate="none"),
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
}
out = {}
# Values on a grid that includes the kinks (0, +-3) exactly, plus random values.
x = torch.cat([torch.linspace(-5, 5, 41, dtype=torch.float64), 4 * torch.randn(64, dtype=torch.float64)])
x = x.reshape(3, 5, 7).requires_grad_()
dout = torch.randn(3, 5, 7, dtype=torch.float64)
out["x"] = x
out["dout"] = dout
for name, f in fns.items():
    y = f(x)
    (dx,) = grads(y, dout, x)
    out[name + ".y"] = y
    out[name + ".dx"] = dx
save("activation", out, {"torch": torch.__version__})
