#!/usr/bin/python3
"""PyTorch reference for train::SGD: three steps of torch.optim.SGD on fixed gradients (see common.py)."""
import torch

from common import save, seeded

seeded(3)
out = {}
w0 = torch.randn(4, 3, dtype=torch.float64)
grads = [torch.randn(4, 3, dtype=torch.float64) for _ in range(3)]
out["w0"] = w0
for i, g in enumerate(grads):
    out[f"grad{i}"] = g
configs = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.1, momentum=0.9),
    "nesterov_wd": dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-2),
}
for name, kw in configs.items():
    w = w0.clone().requires_grad_()
    opt = torch.optim.SGD([w], **kw)
    for i, g in enumerate(grads):
        w.grad = g.clone()
        opt.step()
        out[f"{name}.w{i + 1}"] = w.detach().clone()
save("sgd", out, {"torch": torch.__version__})
