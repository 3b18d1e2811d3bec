#!/usr/bin/python3
"""PyTorch reference for dropout and drop-path with rev's counter-based masks (see common.py).

PyTorch's own generator cannot reproduce rev's masks, so the uniforms come from an independent
Python implementation of Philox-4x32-10 (Salmon et al., SC'11) with rev's stream layout
(number i of rng_state {seed, offset} is word (offset + i) % 4 of the block at counter
(offset + i) // 4, as a 24-bit uniform). The masking itself is PyTorch's: dropout
x * (U >= p) / (1 - p), drop-path as SlowFast writes it, x / keep * floor(keep + U) per sample.

Case i of kind m stores m.i.meta = [p, seed, offset], m.i.x, m.i.dout, m.i.y, m.i.dx."""
import torch

from common import grads, save, seeded

M32 = 0xFFFFFFFF


def philox_block(seed, counter):
    c0, c1, c2, c3 = counter & M32, (counter >> 32) & M32, 0, 0
    k0, k1 = seed & M32, (seed >> 32) & M32
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c2 = ((p1 >> 32) ^ c1 ^ k0) & M32, ((p0 >> 32) ^ c3 ^ k1) & M32
        c1, c3 = p1 & M32, p0 & M32
        k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
    return [c0, c1, c2, c3]


def uniforms(seed, offset, count):
    out = []
    for i in range(count):
        n = offset + i
        out.append((philox_block(seed, n >> 2)[n & 3] >> 8) / 16777216.0)
    return torch.tensor(out, dtype=torch.float64)


seeded(6)
cases = {
    "dropout": [((2, 3, 4, 5), 0.3, 123, 8), ((1, 1, 1, 1), 0.5, 7, 0), ((3, 7), 0.9, (1 << 40) + 5, 6),
                ((5, 6), 0.0, 9, 0)],
    "drop_path": [((6, 2, 3), 0.4, 11, 4), ((1, 4), 0.2, 12, 0), ((8, 3, 2, 2), 0.5, (1 << 33) + 1, 3)],
}
out = {}
for kind, specs in cases.items():
    for i, (shape, p, seed, offset) in enumerate(specs):
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        if kind == "dropout":
            u = uniforms(seed, offset, x.numel()).reshape(shape)
            y = x * (u >= p).to(torch.float64) / (1 - p)
        else:
            keep = 1 - p
            u = uniforms(seed, offset, shape[0]).reshape((shape[0],) + (1,) * (len(shape) - 1))
            y = x.div(keep) * torch.floor(keep + u)
        dout = torch.randn(shape, dtype=torch.float64)
        (dx,) = grads(y, dout, x)
        key = f"{kind}.{i}."
        out[key + "meta"] = torch.tensor([p, seed, offset], dtype=torch.float64)
        out[key + "x"], out[key + "dout"], out[key + "y"], out[key + "dx"] = x, dout, y, dx
# The first uniforms of two streams, to pin the generator itself.
out["philox.uniforms"] = torch.cat([uniforms(0, 0, 9), uniforms((1 << 40) + 5, 6, 9)])
save("dropout", out, {"torch": torch.__version__})
