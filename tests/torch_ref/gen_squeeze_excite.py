#!/usr/bin/python3
"""PyTorch reference for RevBiFPN's squeeze-excite (see common.py and
../shared/specs/revbifpn.md §4.3): y = x * se(x), se = Sequential(AdaptiveAvgPool2d(1),
Conv2d(W, Q, 1), Hardswish(), Conv2d(Q, W, 1), Hardsigmoid())."""
import torch
from torch import nn

from common import grads, save, seeded

seeded(10)
out = {}
# name: (W, Q, shape of x)
for name, (W, Q, shape) in {"a": (6, 2, (2, 6, 5, 3)), "b": (8, 1, (1, 8, 1, 1)), "c": (5, 3, (3, 5, 4, 4))}.items():
    se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(W, Q, 1), nn.Hardswish(), nn.Conv2d(Q, W, 1), nn.Hardsigmoid())
    se = se.double()
    with torch.no_grad():  # spread the pre-activations over the kinks and linear parts
        for i in (1, 3):
            se[i].weight.copy_(torch.randn_like(se[i].weight))
            se[i].bias.copy_(1.5 * torch.randn_like(se[i].bias))
    x = (torch.randn(*shape, dtype=torch.float64) + 0.5).requires_grad_()
    y = x * se(x)
    dout = torch.randn(*shape, dtype=torch.float64)
    params = [se[1].weight, se[1].bias, se[3].weight, se[3].bias]
    g = grads(y, dout, x, *params)
    p = name + "."
    for k, v in dict(x=x, y=y, dout=dout, dx=g[0]).items():
        out[p + k] = v
    for key, t, dt in zip(["se.1.weight", "se.1.bias", "se.3.weight", "se.3.bias"], params, g[1:]):
        out[p + key] = t
        out[p + "grad." + key] = dt
save("squeeze_excite", out, {"torch": torch.__version__})
