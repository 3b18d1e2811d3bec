#!/usr/bin/python3
"""PyTorch reference for channel split and concatenation (dim 1; see common.py).

Case k stores k.sizes, k.x, the split parts k.part<i> with upstream gradients k.dpart<i>, the
gradient k.dx of the split, and for the concatenation of the parts k.dcat (upstream gradient)
and k.cat_dpart<i> (the parts' gradients)."""
import torch

from common import grads, save, seeded

seeded(4)
cases = [((2, 5, 3, 4), [2, 0, 3]), ((1, 1, 1, 1), [1]), ((3, 6, 5), [1, 4, 1]), ((2, 7), [3, 4]),
         ((1, 4, 2, 3), [2, 2])]
out = {}
for k, (shape, sizes) in enumerate(cases):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    parts = torch.split(x, sizes, dim=1)
    dparts = [torch.randn(p.shape, dtype=torch.float64) for p in parts]
    (dx,) = torch.autograd.grad(parts, [x], dparts)
    out[f"{k}.sizes"] = torch.tensor(sizes, dtype=torch.float64)
    out[f"{k}.x"], out[f"{k}.dx"] = x, dx
    leaves = [p.detach().clone().requires_grad_() for p in parts]
    cat = torch.cat(leaves, dim=1)
    dcat = torch.randn(cat.shape, dtype=torch.float64)
    dleaves = grads(cat, dcat, *leaves)
    out[f"{k}.dcat"] = dcat
    for i, (p, dp, dl) in enumerate(zip(parts, dparts, dleaves)):
        out[f"{k}.part{i}"], out[f"{k}.dpart{i}"], out[f"{k}.cat_dpart{i}"] = p, dp, dl
save("channels", out, {"torch": torch.__version__})
