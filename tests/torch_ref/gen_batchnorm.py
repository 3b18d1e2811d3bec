#!/usr/bin/python3
"""PyTorch reference for batch normalisation (see common.py): nn.BatchNorm2d in train mode
(batch statistics, one running-statistics update) and in eval mode, forward and backward."""
import torch

from common import grads, save, seeded

seeded(3)
# name: (shape [N, C, H, W], eps, momentum)
cases = {
    "a": ((4, 5, 3, 3), 1e-5, 0.1),
    "b": ((2, 3, 1, 1), 1e-3, 0.1),  # 1x1 maps: two values per channel
    "c": ((1, 7, 5, 4), 1e-3, 0.25),  # batch 1, odd channel count
    "d": ((3, 2, 6, 1), 1e-5, 0.1),
}
out = {}
for name, (shape, eps, momentum) in cases.items():
    C = shape[1]
    # Channels with offsets far from zero exercise the shifted statistics.
    x = torch.randn(*shape, dtype=torch.float64) * 2 + 5 * torch.randn(1, C, 1, 1, dtype=torch.float64)
    bn = torch.nn.BatchNorm2d(C, eps=eps, momentum=momentum).double()
    with torch.no_grad():
        bn.weight.copy_(torch.rand(C, dtype=torch.float64) + 0.5)
        bn.bias.copy_(0.1 * torch.randn(C, dtype=torch.float64))
        bn.running_mean.copy_(0.1 * torch.randn(C, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(C, dtype=torch.float64) + 0.5)
    dout = torch.randn(*shape, dtype=torch.float64)
    p = name + "."
    out[p + "x"] = x
    out[p + "weight"] = bn.weight
    out[p + "bias"] = bn.bias
    out[p + "running_mean"] = bn.running_mean.clone()
    out[p + "running_var"] = bn.running_var.clone()
    out[p + "dout"] = dout
    out[p + "eps"] = torch.tensor([eps], dtype=torch.float64)
    out[p + "momentum"] = torch.tensor([momentum], dtype=torch.float64)
    for mode in ("eval", "train"):
        bn.train(mode == "train")
        xi = x.clone().requires_grad_()
        y = bn(xi)
        dx, dw, db = grads(y, dout, xi, bn.weight, bn.bias)
        out[p + mode + ".y"] = y
        out[p + mode + ".dx"] = dx
        out[p + mode + ".dweight"] = dw
        out[p + mode + ".dbias"] = db
    out[p + "train.running_mean"] = bn.running_mean
    out[p + "train.running_var"] = bn.running_var
    out[p + "train.mean"] = x.mean((0, 2, 3))
    out[p + "train.invstd"] = 1 / torch.sqrt(x.var((0, 2, 3), unbiased=False) + eps)
save("batchnorm", out, {"torch": torch.__version__})
