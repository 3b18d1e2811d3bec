#!/usr/bin/python3
"""PyTorch reference for rev::ops::conv2d and its backward (see common.py).

Case i stores c<i>.x, c<i>.w, c<i>.b (when it has a bias), c<i>.dout, c<i>.y, c<i>.dx, c<i>.dw,
c<i>.db and c<i>.params = [stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups].
"""
import torch
import torch.nn.functional as F

from common import grads, save, seeded

seeded(3)
# (x extents, C_out, (kh, kw), stride, padding, dilation, groups, bias)
cases = [
    ((2, 6, 9, 11), 6, (3, 3), (1, 1), (1, 1), (1, 1), 6, False),      # depthwise k3 s1
    ((2, 5, 9, 8), 5, (3, 3), (2, 2), (1, 1), (1, 1), 5, False),       # depthwise k3 s2, odd size
    ((1, 4, 17, 15), 4, (7, 7), (4, 4), (3, 3), (1, 1), 4, False),     # depthwise k7 s4
    ((2, 3, 20, 17), 3, (15, 15), (8, 8), (7, 7), (1, 1), 3, False),   # depthwise k15 s8
    ((1, 4, 7, 7), 4, (5, 5), (1, 1), (2, 2), (1, 1), 4, True),        # depthwise k5 with bias
    ((2, 3, 8, 9), 3, (3, 3), (1, 2), (2, 1), (2, 1), 3, False),       # depthwise, dilated, mixed strides
    ((2, 7, 5, 6), 9, (1, 1), (1, 1), (0, 0), (1, 1), 1, True),        # pointwise
    ((3, 8, 1, 1), 2, (1, 1), (1, 1), (0, 0), (1, 1), 1, True),        # squeeze-excite 1x1 on 1x1 maps
    ((2, 6, 4, 5), 4, (1, 1), (1, 1), (0, 0), (1, 1), 2, False),       # grouped pointwise
    ((2, 5, 8, 7), 6, (3, 3), (1, 1), (1, 1), (1, 1), 1, False),       # dense 3x3
    ((1, 3, 9, 10), 4, (3, 3), (2, 2), (1, 1), (1, 1), 1, True),       # dense 3x3 stride 2
    ((2, 6, 7, 7), 9, (3, 3), (1, 1), (1, 1), (1, 1), 3, True),        # grouped 3x3
    ((1, 4, 10, 9), 3, (3, 3), (1, 1), (2, 2), (2, 2), 1, False),      # dilated dense
    ((2, 3, 8, 11), 4, (3, 5), (2, 1), (1, 2), (1, 2), 1, False),      # non-square everything
    ((2, 4, 1, 1), 5, (3, 3), (1, 1), (1, 1), (1, 1), 1, True),        # 3x3 on 1x1 maps
    ((1, 3, 6, 6), 6, (3, 3), (1, 1), (1, 1), (1, 1), 3, False),       # channel multiplier 2
    ((2, 4, 7, 7), 3, (1, 1), (2, 2), (0, 0), (1, 1), 1, False),       # 1x1 stride 2
]
out = {}
for i, (xs, co, k, s, p, d, g, has_bias) in enumerate(cases):
    x = torch.randn(*xs, dtype=torch.float64, requires_grad=True)
    w = torch.randn(co, xs[1] // g, *k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(co, dtype=torch.float64, requires_grad=True) if has_bias else None
    y = F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)
    dout = torch.randn_like(y)
    gs = grads(y, dout, x, w, *([b] if has_bias else []))
    c = f"c{i}."
    out[c + "x"], out[c + "w"], out[c + "dout"], out[c + "y"] = x, w, dout, y
    out[c + "dx"], out[c + "dw"] = gs[0], gs[1]
    if has_bias:
        out[c + "b"], out[c + "db"] = b, gs[2]
    out[c + "params"] = torch.tensor([s[0], s[1], p[0], p[1], d[0], d[1], g], dtype=torch.float64)
save("conv2d", out, {"torch": torch.__version__})
