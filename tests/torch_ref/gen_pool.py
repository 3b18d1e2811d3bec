#!/usr/bin/python3
"""PyTorch reference for global average pooling (see common.py): nn.AdaptiveAvgPool2d(1)."""
import torch

from common import grads, save, seeded

seeded(5)
out = {}
for name, shape in {"a": (2, 3, 4, 5), "b": (1, 1, 1, 1), "c": (3, 5, 7, 1)}.items():
    x = torch.randn(*shape, dtype=torch.float64).requires_grad_()
    y = torch.nn.AdaptiveAvgPool2d(1)(x)
    dout = torch.randn(*y.shape, dtype=torch.float64)
    (dx,) = grads(y, dout, x)
    for k, v in dict(x=x, y=y, dout=dout, dx=dx).items():
        out[name + "." + k] = v
save("pool", out, {"torch": torch.__version__})
