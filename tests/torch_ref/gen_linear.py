#!/usr/bin/python3
"""PyTorch reference for rev::ops::linear and its backward (see common.py).

Case i stores l<i>.x, l<i>.w, l<i>.b (when it has a bias), l<i>.dout, l<i>.y, l<i>.dx, l<i>.dw, l<i>.db.
"""
import torch
import torch.nn.functional as F

from common import grads, save, seeded

seeded(4)
# (x extents, out features, bias)
cases = [
    ((5, 7), 3, True),
    ((2, 3, 4, 6), 5, True),   # rank 4: applied over the last extent
    ((9,), 4, False),          # rank 1
    ((1, 1), 1, True),
    ((37, 16), 11, False),
]
out = {}
for i, (xs, o, has_bias) in enumerate(cases):
    x = torch.randn(*xs, dtype=torch.float64, requires_grad=True)
    w = torch.randn(o, xs[-1], dtype=torch.float64, requires_grad=True)
    b = torch.randn(o, dtype=torch.float64, requires_grad=True) if has_bias else None
    y = F.linear(x, w, b)
    dout = torch.randn_like(y)
    gs = grads(y, dout, x, w, *([b] if has_bias else []))
    c = f"l{i}."
    out[c + "x"], out[c + "w"], out[c + "dout"], out[c + "y"] = x, w, dout, y
    out[c + "dx"], out[c + "dw"] = gs[0], gs[1]
    if has_bias:
        out[c + "b"], out[c + "db"] = b, gs[2]
save("linear", out, {"torch": torch.__version__})
