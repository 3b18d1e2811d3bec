"""Reference data of RevCol-H's column (level 0 also reads the previous column's top level through
a second up path, "up2"), from the official code: a reduced RevColHuge (widths 4, 8, 12, 16, blocks
1, 1, 2, 1, 3 columns, 5 classes, no intermediate heads) in float64, every parameter drawn at random
so that no block is close to the identity (layer scales and alphas included; alphas of both signs).

    /usr/bin/python3 tests/torch_ref/gen_revcol_huge.py PATH/TO/RevCol-checkout

Imports models/revcol_huge.py from the checkout (megvii-research/RevCol; timm stand-in from
bench/speed_revcol.py when timm is absent), checks that its reversible path (save_memory=True) gives
the plain path's gradients, and writes
  revcol_huge.weights.safetensors  the parameters under the official keys
  revcol_huge.safetensors          x, dout, the last column's levels (eval), logits, d(sum(logits *
                                   dout))/dx and "grad.<key>" for every parameter (train mode)
"""
import argparse
import os
import sys

import torch

from common import HERE, save, seeded

sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
from speed_revcol import timm_stand_in  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkout", help="a checkout of megvii-research/RevCol (the directory with models/)")
    args = p.parse_args()
    timm_stand_in()
    sys.path.insert(0, args.checkout)
    from models.revcol_huge import RevColHuge

    torch.set_default_dtype(torch.float64)

    def build(save_memory):
        return RevColHuge(channels=[4, 8, 12, 16], layers=[1, 1, 2, 1], num_subnet=3, kernel_size=3, num_classes=5,
                          drop_path=0.0, save_memory=save_memory, inter_supv=False)

    g = seeded(11)
    plain = build(False)
    norms = {name for name, m in plain.named_modules() if "LayerNorm" in type(m).__name__}
    with torch.no_grad():
        for key, t in plain.named_parameters():
            if ".alpha" in key:  # |alpha| in [0.3, 0.8], either sign
                sign = torch.where(torch.rand(t.shape, generator=g) < 0.3, -1.0, 1.0)
                t.copy_(sign * (0.3 + 0.5 * torch.rand(t.shape, generator=g)))
            elif key.rsplit(".", 1)[0] in norms and key.endswith(".weight"):
                t.copy_(1 + 0.2 * torch.randn(t.shape, generator=g))
            else:
                t.copy_(0.3 * torch.randn(t.shape, generator=g))
    state = {k: v.clone() for k, v in plain.state_dict().items()}
    x = torch.randn(2, 3, 64, 32, generator=g)  # H != W; the top level is 2 x 1
    dout = torch.randn(2, 5, generator=g)

    def train_step(model):
        model.train()
        model.zero_grad()
        xi = x.clone().requires_grad_(True)
        logits = model(xi)[0][-1]
        (logits * dout).sum().backward()
        return logits.detach(), xi.grad, {k: t.grad.clone() for k, t in model.named_parameters()}

    logits, dx, grads = train_step(plain)
    reversible = build(True)
    reversible.load_state_dict(state)
    r_logits, r_dx, r_grads = train_step(reversible)
    worst = max([(r_logits - logits).abs().max().item(), (r_dx - dx).abs().max().item()] +
                [(r_grads[k] - grads[k]).abs().max().item() for k in grads])
    print(f"official reversible vs plain path, float64: max abs difference {worst:.2e}")
    assert worst < 1e-10

    plain.eval()
    with torch.no_grad():
        c = (0, 0, 0, 0)
        s = plain.stem(x)
        for i in range(plain.num_subnet):
            c = getattr(plain, f"subnet{i}")(s, *c)
        eval_logits = plain.cls(c[3])
    assert (eval_logits - logits).abs().max().item() < 1e-12  # no batch statistics, no drop path

    save("revcol_huge.weights", state)
    out = {"x": x, "dout": dout, "logits": logits, "dx": dx}
    out.update({f"features.{l}": c[l] for l in range(4)})
    out.update({f"grad.{k}": v for k, v in grads.items()})
    save("revcol_huge", out, {"source": "megvii-research/RevCol models/revcol_huge.py, float64"})
    print(f"{len(state)} parameters, {sum(v.numel() for v in state.values())} values")


if __name__ == "__main__":
    main()
