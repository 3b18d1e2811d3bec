#!/usr/bin/python3
"""PyTorch reference for bilinear and nearest up-sampling by an integer factor (see common.py).

Modes: bilinear (align_corners=False), nearest, aligned (bilinear, align_corners=True).
Case i of mode m stores m.i.factor (one element), m.i.x, m.i.y, m.i.dout and m.i.dx."""
import torch
import torch.nn.functional as F

from common import grads, save, seeded

seeded(2)
cases = {
    "bilinear": [((1, 1, 1, 1), 2), ((2, 3, 5, 7), 2), ((1, 2, 4, 3), 3), ((1, 1, 3, 2), 4),
                 ((2, 1, 2, 3), 8), ((1, 2, 1, 5), 2), ((1, 1, 6, 1), 1)],
    "nearest": [((2, 3, 5, 7), 2), ((1, 1, 1, 1), 3), ((1, 2, 3, 4), 3), ((1, 1, 2, 1), 8)],
    "aligned": [((2, 3, 5, 7), 2), ((1, 1, 1, 1), 2), ((1, 2, 4, 3), 3), ((1, 1, 2, 2), 2), ((1, 2, 1, 5), 4)],
}
out = {}
for mode, shapes in cases.items():
    for i, (shape, factor) in enumerate(shapes):
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        if mode == "bilinear":
            y = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        elif mode == "aligned":
            y = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=True)
        else:
            y = F.interpolate(x, scale_factor=factor, mode="nearest")
        dout = torch.randn(y.shape, dtype=torch.float64)
        (dx,) = grads(y, dout, x)
        key = f"{mode}.{i}."
        out[key + "factor"] = torch.tensor([factor], dtype=torch.float64)
        out[key + "x"], out[key + "y"], out[key + "dout"], out[key + "dx"] = x, y, dout, dx
save("resample", out, {"torch": torch.__version__})
