#!/usr/bin/python3
"""PyTorch reference for maps <-> tokens (see common.py): ViT's x.flatten(2).transpose(1, 2) and
its inverse t.transpose(1, 2).reshape(B, C, H, W). Case k stores k.x [B, C, H, W], k.tokens,
k.dtokens (an upstream gradient of the tokens) and k.dx (its gradient with respect to x)."""
import torch

from common import grads, save, seeded

seeded(5)
cases = [(2, 3, 4, 5), (1, 1, 1, 1), (2, 10, 7, 9), (1, 8, 33, 2)]
out = {}
for k, shape in enumerate(cases):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    tokens = x.flatten(2).transpose(1, 2)
    dtokens = torch.randn(tokens.shape, dtype=torch.float64)
    (dx,) = grads(tokens, dtokens, x)
    out[f"{k}.x"], out[f"{k}.tokens"], out[f"{k}.dtokens"], out[f"{k}.dx"] = x, tokens, dtokens, dx
save("tokens", out, {"torch": torch.__version__})
