#!/usr/bin/python3
"""PyTorch reference for softmax over the last dimension and for the cross-entropy loss with
label smoothing (see common.py)."""
import torch
import torch.nn.functional as F

from common import grads, save, seeded

seeded(6)
out = {}
for name, (shape, scale) in {"a": ((4, 7), 1), "b": ((2, 3, 1), 1), "c": ((1, 10), 30), "d": ((3, 2, 5), 3)}.items():
    x = (scale * torch.randn(*shape, dtype=torch.float64)).requires_grad_()
    y = torch.softmax(x, -1)
    dout = torch.randn(*shape, dtype=torch.float64)
    (dx,) = grads(y, dout, x)
    for k, v in dict(x=x, y=y, dout=dout, dx=dx).items():
        out["softmax." + name + "." + k] = v
# name: (N, K, label smoothing, logit scale)
for name, (N, K, ls, scale) in {
    "a": (5, 7, 0.0, 2),
    "b": (5, 7, 0.1, 2),
    "c": (1, 3, 0.2, 1),
    "d": (6, 1, 0.1, 1),  # one class: the loss is 0
    "e": (8, 10, 1.0, 20),  # uniform target; large logits
}.items():
    z = (scale * torch.randn(N, K, dtype=torch.float64)).requires_grad_()
    t = torch.randint(0, K, (N,))
    loss = F.cross_entropy(z, t, label_smoothing=ls)
    (dz,) = grads(loss, torch.tensor(0.7, dtype=torch.float64), z)  # dloss = 0.7
    p = "ce." + name + "."
    for k, v in dict(logits=z, targets=t, loss=loss.reshape(1), dlogits=dz).items():
        out[p + k] = v
    out[p + "label_smoothing"] = torch.tensor([ls], dtype=torch.float64)
save("softmax", out, {"torch": torch.__version__})
