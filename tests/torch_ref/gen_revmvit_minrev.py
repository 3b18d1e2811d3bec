"""Reference data of minREV's reversible MViTv2 (ReversibleMViT of karttikeya/minREV revmvit.py,
the detectron2-style MViTv2 with 4-D channels-last tokens) in float64, at reduced size: 24 x 24
images, stem conv 3/2/1 to a 12 x 12 grid of width 8, 1 head, depth 7 with stage ends at blocks
1, 4, 6 (reversible stacks {0, 1}, {3, 4}, {6}; stage transitions 2 and 5 with Q stride 2), K/V
stride 2, windows of 8 (zero padding of the 12- and 6-grids), decomposed relative positions
(tables interpolated where a window is smaller than the table), residual pooling, 5 classes;
every parameter drawn at random so that none is at its initial value.

    /usr/bin/python3 tests/torch_ref/gen_revmvit_minrev.py PATH/TO/minREV-checkout

Imports revmvit.py from the checkout, with a small stand-in for timm.models.layers when timm is
missing, and works around three defects from outside: revmvit.py uses `sys` without importing it,
the model never sets `no_custom_backward`, and ReversibleMultiScaleBlock.forward computes
F(X_1) while its backward_pass inverts Y_1 = X_1 + F(X_2).  The forward is replaced by one that
applies F to X_2 (same seeding order); with the shipped forward, the reversible backward differs
from autograd by a worst relative gradient error of O(1) (printed below; 4.0e+00 here),
since the first two stacks hold two blocks.  Checks that the reversible backward (RevBackProp,
train mode) gives the plain path's gradients, and writes
  revmvit_minrev.weights.safetensors  the parameters under minREV's keys
  revmvit_minrev.safetensors          x, dout, logits, dx, "grad.<key>", and the plain forward's
                                      "intermediate.stem" and "intermediate.block.<i>" [B, H, W, C]
                                      (a reversible block's output is [Y_1 | Y_2] on the last axis)
"""
import argparse
import importlib
import sys
import types

import torch
from torch import nn

from common import save, seeded

CONFIG = dict(img_size=(24, 24), patch_kernel=(3, 3), patch_stride=(2, 2), patch_padding=(1, 1),
              in_chans=3, embed_dim=8, depth=7, num_heads=1, last_block_indexes=(1, 4, 6),
              qkv_pool_kernel=(3, 3), adaptive_kv_stride=2, adaptive_window_size=8,
              residual_pooling=True, mlp_ratio=4.0, qkv_bias=True, drop_path_rate=0.0, num_classes=5,
              use_abs_pos=False, use_rel_pos=True, rel_pos_zero_init=True)
DEFAULT_PARAMETERS = 36_413_896


class StandInMlp(nn.Module):
    """timm's Mlp layout: fc1, act, drop1, norm (identity), fc2, drop2."""

    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU, drop=0.0):
        super().__init__()
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.norm = nn.Identity()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x):
        return self.drop2(self.fc2(self.norm(self.drop1(self.act(self.fc1(x))))))


class StandInDropPath(nn.Module):
    """Stochastic depth: zeroes whole samples with probability p, scales the rest by 1 / (1 - p)."""

    def __init__(self, drop_prob=0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


def import_revmvit(checkout):
    try:
        importlib.import_module("timm.models.layers")
    except ImportError:
        layers = types.ModuleType("timm.models.layers")
        layers.Mlp, layers.DropPath, layers.trunc_normal_ = StandInMlp, StandInDropPath, nn.init.trunc_normal_
        sys.modules.update({"timm": types.ModuleType("timm"), "timm.models": types.ModuleType("timm.models"),
                            "timm.models.layers": layers})
    sys.path.insert(0, checkout)
    import revmvit
    revmvit.sys = sys  # used by seed_cuda, never imported there
    return revmvit


def fixed_forward(self, X_1, X_2):
    """Y_1 = X_1 + drop_path(F(X_2)), Y_2 = X_2 + drop_path(G(Y_1)): what backward_pass inverts."""
    assert X_1.shape == X_2.shape
    self.seed_cuda("attn")
    f_X_2 = self.F(X_2)
    self.seed_cuda("droppath")
    Y_1 = X_1 + self.drop_path(f_X_2)
    self.seed_cuda("mlp")
    g_Y_1 = self.G(Y_1)
    torch.manual_seed(self.seeds["droppath"])
    Y_2 = X_2 + self.drop_path(g_Y_1)
    return Y_1, Y_2


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkout", help="a checkout of karttikeya/minREV (the directory with revmvit.py)")
    args = p.parse_args()
    revmvit = import_revmvit(args.checkout)
    shipped_forward = revmvit.ReversibleMultiScaleBlock.forward
    revmvit.ReversibleMultiScaleBlock.forward = fixed_forward

    # The default model: its img_size=224 is an int, which the constructor's img_size[0] rejects.
    try:
        default = revmvit.ReversibleMViT()
    except TypeError as e:
        print(f"ReversibleMViT() fails ({e}); counting ReversibleMViT(img_size=(224, 224))")
        default = revmvit.ReversibleMViT(img_size=(224, 224))
    count = sum(t.numel() for t in default.parameters())
    print(f"default ReversibleMViT: {count:,} parameters")
    assert count == DEFAULT_PARAMETERS
    del default

    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    model = revmvit.ReversibleMViT(**CONFIG)
    g = seeded(31)
    with torch.no_grad():
        for key, t in model.named_parameters():
            print(f"  {key} {list(t.shape)}")
            if "norm" in key and key.endswith(".weight"):
                t.copy_(1 + 0.3 * torch.randn(t.shape, generator=g))
            else:
                t.copy_(0.3 * torch.randn(t.shape, generator=g))
    x = torch.randn(2, 3, 24, 24, generator=g)
    dout = torch.randn(2, CONFIG["num_classes"], generator=g)

    def step(reversible):
        model.train()  # minREV takes the plain (vanilla_backward) path in eval or with no_custom_backward
        model.no_custom_backward = not reversible
        model.zero_grad()
        xi = x.clone().requires_grad_(True)
        logits = model(xi)
        (logits * dout).sum().backward()
        out = {"logits": logits.detach(), "dx": xi.grad}
        out.update({f"grad.{k}": t.grad.clone() for k, t in model.named_parameters()})
        return out

    def compare(a, b, relative):
        # relative: to each tensor's largest plain value, skipping tensors that are zero up to round-off
        # (norm_k.bias of the unwindowed blocks 4 and 6: a bias shared by all keys cancels in the softmax)
        scale = {k: b[k].abs().max().item() if relative else 1.0 for k in a}
        return max((a[k] - b[k]).abs().max().item() / scale[k] for k in a if scale[k] > 1e-12)

    rev, plain = step(True), step(False)
    worst = compare(rev, plain, False)
    print(f"minREV reversible vs plain path, float64: max abs difference {worst:.2e}")
    assert worst < 1e-10

    revmvit.ReversibleMultiScaleBlock.forward = shipped_forward
    shipped = compare(step(True), step(False), True)
    revmvit.ReversibleMultiScaleBlock.forward = fixed_forward
    print(f"with the shipped forward (F reads X_1): worst relative gradient error {shipped:.2e}")
    assert shipped > 1e-3

    # The plain forward's intermediates, 4-D channels-last as minREV keeps them.
    inter = {}

    def record(name):
        return lambda module, inputs, output: inter.__setitem__(
            name, torch.cat(output, dim=-1) if isinstance(output, tuple) else output.clone())

    hooks = [model.patch_embed.register_forward_hook(record("intermediate.stem"))]
    hooks += [b.register_forward_hook(record(f"intermediate.block.{i}")) for i, b in enumerate(model.blocks)]
    model.eval()
    with torch.no_grad():
        logits = model(x)
    for h in hooks:
        h.remove()
    assert (logits - rev["logits"]).abs().max() < 1e-10
    for k, v in inter.items():
        print(f"  {k} {list(v.shape)}")

    save("revmvit_minrev.weights", dict(model.state_dict()))
    out = {"x": x, "dout": dout}
    out.update(rev)
    out.update(inter)
    save("revmvit_minrev", out, {"source": "karttikeya/minREV revmvit.py (forward fixed: F reads X_2), float64"})
    print(f"{len(rev) - 2} parameters, {sum(t.numel() for t in model.parameters())} values")


if __name__ == "__main__":
    main()
