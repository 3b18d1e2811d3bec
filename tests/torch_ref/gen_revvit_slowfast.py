"""Reference data of Rev-ViT in SlowFast's layout (the official checkpoints'), from the official
code: SlowFast's ReversibleMViT blocks as a Rev-ViT (no pooling, separate q/k/v, eps 1e-6) in
float64, patch 4, 16 x 16 images, width 16, depth 3, 2 heads, 5 classes, every LayerNorm, bias and
the position embedding perturbed at random so that none is at its initial value.

    /usr/bin/python3 tests/torch_ref/gen_revvit_slowfast.py PATH/TO/SlowFast-checkout

Imports slowfast/models/reversible_mvit.py (and attention.py, common.py, utils.py) from the
checkout with stub packages for slowfast and slowfast.utils.logging (SlowFast's package __init__
pulls in its whole training stack). The parts of SlowFast's MViT container around the reversible
stack (patch embedding, position embedding, norm over 2C before the mean over tokens, head) are
written here from their description (spec revvit.md §1.7), under the official keys. Checks that the
reversible backward (RevBackProp, train mode) gives the plain path's gradients, and writes
  revvit_slowfast.weights.safetensors  the parameters under the official keys
  revvit_slowfast.safetensors          x, dout, tokens (the stem's output), x1, x2 (the streams
                                       after the last block), logits, dx and "grad.<key>"
"""
import argparse
import os
import sys
import types

import torch

from common import save, seeded


def stub_packages(checkout):
    """slowfast.models.* importable without slowfast/__init__.py and its dependencies."""
    for name, path in (("slowfast", "slowfast"), ("slowfast.models", "slowfast/models"),
                       ("slowfast.utils", "slowfast/utils")):
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(checkout, path)]
        sys.modules[name] = module
    logging = types.ModuleType("slowfast.utils.logging")
    logging.get_logger = lambda name=None: __import__("logging").getLogger(name)
    sys.modules["slowfast.utils.logging"] = logging


def config(width, depth, heads):
    ns = types.SimpleNamespace
    return ns(MVIT=ns(EMBED_DIM=width, DEPTH=depth, NUM_HEADS=heads, MLP_RATIO=4.0, QKV_BIAS=True,
                      DROPPATH_RATE=0.0, DROPOUT_RATE=0.0, NORM="layernorm", DIM_MUL=[], HEAD_MUL=[],
                      CLS_EMBED_ON=False, MODE="conv", POOL_FIRST=False, REL_POS_SPATIAL=False,
                      REL_POS_TEMPORAL=False, REL_POS_ZERO_INIT=False, RESIDUAL_POOLING=False,
                      SEPARATE_QKV=True, REV=ns(PRE_Q_FUSION="avg", BUFFER_LAYERS=[])))


class RevViT(torch.nn.Module):
    """SlowFast's MViT container for a reversible ViT: keys patch_embed.proj, pos_embed,
    rev_backbone, norm, head.projection."""

    def __init__(self, reversible_mvit, patch, image, width, depth, heads, classes):
        super().__init__()
        grid = image // patch
        self.patch_embed = torch.nn.Module()
        self.patch_embed.proj = torch.nn.Conv2d(3, width, patch, stride=patch)
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, grid * grid, width))
        none = [[] for _ in range(depth)]  # no pooling in any block
        container = types.SimpleNamespace(patch_dims=[1, grid, grid], pool_q=none, pool_kv=none, stride_q=none,
                                          stride_kv=none)
        self.rev_backbone = reversible_mvit(config(width, depth, heads), container)
        self.norm = torch.nn.LayerNorm(2 * width, eps=1e-6)
        self.head = torch.nn.Module()
        self.head.projection = torch.nn.Linear(2 * width, classes)

    def tokens(self, x):
        return self.patch_embed.proj(x).flatten(2).transpose(1, 2) + self.pos_embed

    def forward(self, x):
        y = self.rev_backbone(self.tokens(x))
        return self.head.projection(self.norm(y).mean(1)), y


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkout", help="a checkout of facebookresearch/SlowFast (the directory with slowfast/)")
    args = p.parse_args()
    stub_packages(args.checkout)
    from slowfast.models.reversible_mvit import ReversibleMViT

    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    width = 16
    model = RevViT(ReversibleMViT, patch=4, image=16, width=width, depth=3, heads=2, classes=5)
    g = seeded(23)
    with torch.no_grad():
        for key, t in model.named_parameters():
            if key.endswith("norm.weight"):
                t.copy_(1 + 0.3 * torch.randn(t.shape, generator=g))
            elif key.endswith(".bias") or key == "pos_embed":
                t.copy_(0.2 * torch.randn(t.shape, generator=g))
            else:
                t.copy_(0.2 * torch.randn(t.shape, generator=g))
    x = torch.randn(2, 3, 16, 16, generator=g)
    dout = torch.randn(2, 5, generator=g)

    def step(train):
        model.train(train)
        model.zero_grad()
        xi = x.clone().requires_grad_(True)
        logits, y = model(xi)
        (logits * dout).sum().backward()
        grads = {k: t.grad.clone() for k, t in model.named_parameters()}
        return logits.detach(), y.detach(), xi.grad, grads

    logits, y, dx, grads = step(True)  # RevBackProp
    p_logits, _, p_dx, p_grads = step(False)  # the plain path (autograd through the blocks)
    worst = max([(p_logits - logits).abs().max().item(), (p_dx - dx).abs().max().item()] +
                [(p_grads[k] - grads[k]).abs().max().item() for k in grads])
    print(f"official reversible vs plain path, float64: max abs difference {worst:.2e}")
    assert worst < 1e-10

    save("revvit_slowfast.weights", dict(model.state_dict()))
    out = {"x": x, "dout": dout, "tokens": model.tokens(x).detach(), "x1": y[..., :width], "x2": y[..., width:],
           "logits": logits, "dx": dx}
    out.update({f"grad.{k}": v for k, v in grads.items()})
    save("revvit_slowfast", out, {"source": "facebookresearch/SlowFast slowfast/models/reversible_mvit.py, float64"})
    print(f"{len(grads)} parameters, {sum(v.numel() for v in grads.values())} values")


if __name__ == "__main__":
    main()
