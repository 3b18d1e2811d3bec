#!/usr/bin/python3
"""PyTorch reference for space-to-depth in both channel orders (see common.py).

revbifpn order: out[n, (i*b + j)*C + c, y, x] = in[n, c, b*y + i, b*x + j] (revbifpn.md 3.2),
written with reshape/permute; pixel_unshuffle order: torch.nn.functional.pixel_unshuffle.
Case k stores k.block (one element), k.x, k.dout and <order>.k.y, <order>.k.dx."""
import torch
import torch.nn.functional as F

from common import grads, save, seeded


def revbifpn_s2d(x, b):
    n, c, h, w = x.shape
    t = x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4)  # n, i, j, c, y, x
    return t.reshape(n, b * b * c, h // b, w // b)


seeded(3)
cases = [((1, 1, 1, 1), 1), ((2, 3, 4, 6), 2), ((1, 2, 8, 4), 4), ((1, 3, 3, 6), 3), ((2, 1, 4, 4), 4), ((1, 2, 2, 2), 2)]
orders = {"revbifpn": revbifpn_s2d, "pixel_unshuffle": F.pixel_unshuffle}
out = {}
for k, (shape, b) in enumerate(cases):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    dout = torch.randn(shape[0], shape[1] * b * b, shape[2] // b, shape[3] // b, dtype=torch.float64)
    out[f"{k}.block"] = torch.tensor([b], dtype=torch.float64)
    out[f"{k}.x"], out[f"{k}.dout"] = x, dout
    for name, fn in orders.items():
        y = fn(x, b)
        (dx,) = grads(y, dout, x)
        out[f"{name}.{k}.y"], out[f"{name}.{k}.dx"] = y, dx
save("space_to_depth", out, {"torch": torch.__version__})
