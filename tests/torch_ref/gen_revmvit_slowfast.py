"""Reference data of Rev-MViT in SlowFast's layout (REV_MVIT_B_16_CONV's structure at reduced size),
from the official code: SlowFast's ReversibleMViT (reversible stacks, StageTransitionBlock with the
concat_linear_2 fusion and the conv residual path, pooling attention with separate q/k/v) in
float64. Width 8 and 1 head doubling at three transitions, blocks 1-1-2-1 per stage (depth 8,
transitions at 1, 3, 6), K/V stride 4 halved at each transition, 32 x 32 images (token grids
8, 4, 2, 1), 5 classes; every parameter drawn at random so that none is at its initial value.

    /usr/bin/python3 tests/torch_ref/gen_revmvit_slowfast.py PATH/TO/SlowFast-checkout

Imports slowfast/models/reversible_mvit.py with the stub packages of gen_revvit_slowfast.py. The
pooling schedule is derived from the configuration by MViT's rules (the Q stride lists, the
adaptive K/V stride), and the container around the backbone (patch embedding conv 7/4/3, position
embedding, LayerNorm over 2C before the mean over tokens, head) is written here from its
description (spec revvit.md §4.1), under the official keys. Checks that the reversible backward
(RevBackProp, train mode) gives the plain path's gradients, and writes
  revmvit_slowfast.weights.safetensors  the parameters under the official keys
  revmvit_slowfast.safetensors          x, dout, logits, dx and "grad.<key>"
"""
import argparse
import types

import torch

from common import save, seeded
from gen_revvit_slowfast import stub_packages

BLOCKS = [1, 1, 2, 1]
WIDTH, HEADS, IMAGE, PATCH_STRIDE, KV_STRIDE, CLASSES = 8, 1, 32, 4, 4, 5


def schedule():
    """Depth, transition indexes and the per-layer pooling lists of MViT's builder."""
    transitions, i = [], 0
    for s in range(1, 4):
        i += BLOCKS[s - 1]
        transitions.append(i)
        i += 1
    depth = sum(BLOCKS) + 3
    stride_q = [[1, 2, 2] if i in transitions else [] for i in range(depth)]
    pool_q = [[1, 3, 3] if i in transitions else [] for i in range(depth)]
    stride_kv, kv = [], [1, KV_STRIDE, KV_STRIDE]
    for i in range(depth):  # adaptive: divided by the Q stride where Q is pooled, floor 1
        if stride_q[i]:
            kv = [max(a // b, 1) for a, b in zip(kv, stride_q[i])]
        stride_kv.append(kv)
    pool_kv = [[1, 3, 3] for _ in range(depth)]
    return depth, transitions, pool_q, pool_kv, stride_q, stride_kv


def config(depth, transitions):
    ns = types.SimpleNamespace
    mul = [[i, 2.0] for i in transitions]
    return ns(MVIT=ns(EMBED_DIM=WIDTH, DEPTH=depth, NUM_HEADS=HEADS, MLP_RATIO=4.0, QKV_BIAS=True,
                      DROPPATH_RATE=0.0, DROPOUT_RATE=0.0, NORM="layernorm", DIM_MUL=mul, HEAD_MUL=mul,
                      CLS_EMBED_ON=False, MODE="conv", POOL_FIRST=False, REL_POS_SPATIAL=False,
                      REL_POS_TEMPORAL=False, REL_POS_ZERO_INIT=False, RESIDUAL_POOLING=False,
                      SEPARATE_QKV=True,
                      REV=ns(PRE_Q_FUSION="concat_linear_2", BUFFER_LAYERS=transitions, RES_PATH="conv",
                             RESPATH_FUSE="concat")))


class RevMViT(torch.nn.Module):
    """SlowFast's MViT container around the reversible backbone: keys patch_embed.proj, pos_embed,
    rev_backbone, norm, head.projection."""

    def __init__(self, reversible_mvit):
        super().__init__()
        grid = IMAGE // PATCH_STRIDE
        depth, transitions, pool_q, pool_kv, stride_q, stride_kv = schedule()
        self.patch_embed = torch.nn.Module()
        self.patch_embed.proj = torch.nn.Conv2d(3, WIDTH, 7, stride=PATCH_STRIDE, padding=3)
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, grid * grid, WIDTH))
        container = types.SimpleNamespace(patch_dims=[1, grid, grid], pool_q=pool_q, pool_kv=pool_kv,
                                          stride_q=stride_q, stride_kv=stride_kv)
        self.rev_backbone = reversible_mvit(config(depth, transitions), container)
        top = 8 * WIDTH
        self.norm = torch.nn.LayerNorm(2 * top, eps=1e-6)
        self.head = torch.nn.Module()
        self.head.projection = torch.nn.Linear(2 * top, CLASSES)

    def forward(self, x):
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2) + self.pos_embed
        return self.head.projection(self.norm(self.rev_backbone(x)).mean(1))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkout", help="a checkout of facebookresearch/SlowFast (the directory with slowfast/)")
    args = p.parse_args()
    stub_packages(args.checkout)
    from slowfast.models.reversible_mvit import ReversibleMViT

    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    model = RevMViT(ReversibleMViT)
    g = seeded(29)
    with torch.no_grad():
        for key, t in model.named_parameters():
            if "norm" in key and key.endswith(".weight"):
                t.copy_(1 + 0.3 * torch.randn(t.shape, generator=g))
            else:
                t.copy_(0.3 * torch.randn(t.shape, generator=g))
    x = torch.randn(2, 3, IMAGE, IMAGE, generator=g)
    dout = torch.randn(2, CLASSES, generator=g)

    def step(train):
        model.train(train)
        model.zero_grad()
        xi = x.clone().requires_grad_(True)
        logits = model(xi)
        (logits * dout).sum().backward()
        grads = {k: t.grad.clone() for k, t in model.named_parameters()}
        return logits.detach(), xi.grad, grads

    logits, dx, grads = step(True)  # RevBackProp
    p_logits, p_dx, p_grads = step(False)  # the plain path (autograd through the blocks)
    worst = max([(p_logits - logits).abs().max().item(), (p_dx - dx).abs().max().item()] +
                [(p_grads[k] - grads[k]).abs().max().item() for k in grads])
    print(f"official reversible vs plain path, float64: max abs difference {worst:.2e}")
    assert worst < 1e-10

    save("revmvit_slowfast.weights", dict(model.state_dict()))
    out = {"x": x, "dout": dout, "logits": logits, "dx": dx}
    out.update({f"grad.{k}": v for k, v in grads.items()})
    save("revmvit_slowfast", out, {"source": "facebookresearch/SlowFast slowfast/models/reversible_mvit.py, float64"})
    print(f"{len(grads)} parameters, {sum(v.numel() for v in grads.values())} values")


if __name__ == "__main__":
    main()
