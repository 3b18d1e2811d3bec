#!/usr/bin/python3
"""PyTorch reference for layer scale (see common.py): y = gamma * x with gamma broadcast along one
axis, as ConvNeXt applies it channels-last (axis -1) and as it reads on an NCHW map (axis 1,
gamma viewed as [C, 1, 1]). Case k stores k.axis, k.x, k.gamma, k.dout, k.y, k.dx, k.dgamma."""
import torch

from common import grads, save, seeded

seeded(11)
cases = [((2, 3, 4, 5), 1), ((2, 3, 4, 5), -1), ((3, 7, 6), -1), ((4, 6), -1), ((1, 5, 1, 1), 1)]
out = {}
for k, (shape, axis) in enumerate(cases):
    a = axis % len(shape)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    gamma = torch.randn(shape[a], dtype=torch.float64, requires_grad=True)
    view = [1] * len(shape)
    view[a] = shape[a]
    y = gamma.view(view) * x
    dout = torch.randn(shape, dtype=torch.float64)
    dx, dgamma = grads(y, dout, x, gamma)
    out[f"{k}.axis"] = torch.tensor([axis], dtype=torch.float64)
    out[f"{k}.x"], out[f"{k}.gamma"], out[f"{k}.dout"] = x, gamma, dout
    out[f"{k}.y"], out[f"{k}.dx"], out[f"{k}.dgamma"] = y, dx, dgamma
save("layer_scale", out, {"torch": torch.__version__})
