#!/usr/bin/python3
"""PyTorch reference for scaled dot-product multi-head attention (see common.py), written out
with torch ops (torch 1.13 has no scaled_dot_product_attention): per head h,
softmax((q_h * scale) @ k_h^T) @ v_h, as nn.MultiheadAttention scales q (revvit.md 1.4).

Case i stores i.meta = [heads, scale], i.q, i.k, i.v, i.dout, i.out, i.probs [B, heads, Nq, Nk],
i.dq, i.dk, i.dv. Layer case l<i> (nn::MultiHeadAttention, timm's Attention) stores l<i>.meta =
[dim, heads], l<i>.x, l<i>.dout, l<i>.y, l<i>.dx, the parameters under their state_dict names
and their gradients under grad.<name>."""
import math

import torch

from common import grads, save, seeded


def mha(q, k, v, heads, scale):
    b, nq, d = q.shape
    nk, dv = k.shape[1], v.shape[2]
    qh = q.reshape(b, nq, heads, d // heads).transpose(1, 2)
    kh = k.reshape(b, nk, heads, d // heads).transpose(1, 2)
    vh = v.reshape(b, nk, heads, dv // heads).transpose(1, 2)
    probs = torch.softmax((qh * scale) @ kh.transpose(-2, -1), dim=-1)
    return (probs @ vh).transpose(1, 2).reshape(b, nq, dv), probs


seeded(5)
# (B, Nq, Nk, D, Dv, heads, scale or None for 1/sqrt(D/heads))
cases = [(2, 5, 5, 6, 6, 2, None), (1, 1, 1, 4, 4, 1, None), (1, 3, 7, 8, 4, 4, None), (2, 4, 3, 6, 6, 3, 0.5),
         (1, 6, 6, 12, 12, 3, None)]
out = {}
for i, (b, nq, nk, d, dv, heads, scale) in enumerate(cases):
    s = scale if scale is not None else 1 / math.sqrt(d // heads)
    q = (2 * torch.randn(b, nq, d, dtype=torch.float64)).requires_grad_()
    k = (2 * torch.randn(b, nk, d, dtype=torch.float64)).requires_grad_()
    v = torch.randn(b, nk, dv, dtype=torch.float64, requires_grad=True)
    o, probs = mha(q, k, v, heads, s)
    dout = torch.randn(o.shape, dtype=torch.float64)
    dq, dk, dv_ = grads(o, dout, q, k, v)
    key = f"{i}."
    out[key + "meta"] = torch.tensor([heads, scale or 0], dtype=torch.float64)
    for name, t in {"q": q, "k": k, "v": v, "dout": dout, "out": o, "probs": probs, "dq": dq, "dk": dk,
                    "dv": dv_}.items():
        out[key + name] = t

# The layer nn::MultiHeadAttention<Dim, Heads>: timm's Attention (qkv Linear with bias, proj
# Linear), written out. Case l<i> stores the parameters under their state_dict names.
layer_cases = [(2, 5, 12, 3), (1, 1, 4, 1), (3, 4, 8, 2)]
for i, (b, n, dim, heads) in enumerate(layer_cases):
    qkv = torch.nn.Linear(dim, 3 * dim).double()
    proj = torch.nn.Linear(dim, dim).double()
    x = torch.randn(b, n, dim, dtype=torch.float64, requires_grad=True)
    t = qkv(x).reshape(b, n, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)  # 3, B, heads, N, d
    q, k, v = t[0], t[1], t[2]
    a = torch.softmax((q * (dim // heads) ** -0.5) @ k.transpose(-2, -1), dim=-1)
    y = proj((a @ v).transpose(1, 2).reshape(b, n, dim))
    dout = torch.randn(y.shape, dtype=torch.float64)
    params = {"qkv.weight": qkv.weight, "qkv.bias": qkv.bias, "proj.weight": proj.weight, "proj.bias": proj.bias}
    gs = grads(y, dout, x, *params.values())
    key = f"l{i}."
    out[key + "meta"] = torch.tensor([dim, heads], dtype=torch.float64)
    out[key + "x"], out[key + "dout"], out[key + "y"], out[key + "dx"] = x, dout, y, gs[0]
    for (name, p), g in zip(params.items(), gs[1:]):
        out[key + name] = p
        out[key + "grad." + name] = g
save("attention", out, {"torch": torch.__version__})
