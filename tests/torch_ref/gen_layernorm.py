#!/usr/bin/python3
"""PyTorch reference for layer normalisation (see common.py): F.layer_norm over the last
dimension, and RevCol's channels_first LayerNorm (its formula, written as in its repository:
per pixel mean u and biased variance s over channels, (x - u) / sqrt(s + eps), affine)."""
import torch
import torch.nn.functional as F

from common import grads, save, seeded


def layer_norm_channels(x, weight, bias, eps):
    u = x.mean(1, keepdim=True)
    s = (x - u).pow(2).mean(1, keepdim=True)
    x = (x - u) / torch.sqrt(s + eps)
    return weight[:, None, None] * x + bias[:, None, None]


seeded(4)
out = {}
# name: (shape, eps, channels_first)
cases = {
    "cf_a": ((2, 5, 3, 4), 1e-6, True),
    "cf_b": ((1, 3, 1, 1), 1e-6, True),  # batch 1, 1x1 map
    "cf_c": ((3, 1, 2, 2), 1e-6, True),  # one channel: xhat = 0
    "cf_d": ((2, 6, 9, 17), 1e-6, True),  # more pixels than one tile (128)
    "tok_a": ((3, 7, 9), 1e-5, False),
    "tok_b": ((4, 6), 1e-6, False),
    "tok_c": ((5, 1), 1e-5, False),
}
for name, (shape, eps, cf) in cases.items():
    D = shape[1] if cf else shape[-1]
    x = (torch.randn(*shape, dtype=torch.float64) * 1.5 + 2).requires_grad_()
    w = (torch.rand(D, dtype=torch.float64) + 0.5).requires_grad_()
    b = (0.1 * torch.randn(D, dtype=torch.float64)).requires_grad_()
    y = layer_norm_channels(x, w, b, eps) if cf else F.layer_norm(x, (D,), w, b, eps)
    dout = torch.randn(*shape, dtype=torch.float64)
    dx, dw, db = grads(y, dout, x, w, b)
    p = name + "."
    for k, v in dict(x=x, weight=w, bias=b, dout=dout, y=y, dx=dx, dweight=dw, dbias=db).items():
        out[p + k] = v
    out[p + "eps"] = torch.tensor([eps], dtype=torch.float64)
save("layernorm", out, {"torch": torch.__version__})
