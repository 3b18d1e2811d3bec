#!/usr/bin/env python3
"""Training-step speed of RevCol: rev (Stored and Reversible) against the official PyTorch code.

    python3 bench/speed_revcol.py PATH/TO/RevCol-checkout [--rev build/examples/rev]
        [--model t] [--batch 8] [--res 224] [--threads 2] [--steps 3]

One run, one machine, one thread count for both libraries (REV_NUM_THREADS and
torch.set_num_threads). A step is forward + backward of sum(logits * dout) in train mode, stochastic
depth off. The official model (megvii-research/RevCol, models/revcol.py) is imported from the
checkout, nothing of it copied here, built without the intermediate heads (inter_supv=False: the
loss reads the final classifier only, as `rev bench` does; rev's model carries the heads' parameters
but does not run them when no loss is attached) and timed in its plain mode (save_memory=False:
ordinary autograd) and in its reversible mode (save_memory=True). The official code imports timm
only for DropPath and trunc_normal_; when timm is absent a two-symbol stand-in module is registered
(DropPath is the identity here: the rate is 0). Prints one JSON line per measurement, then one with
the ratios:
  rev_reversible / rev_stored
  rev_reversible / official_plain, rev_reversible / official_reversible
  official_reversible / official_plain   (for context)
Peak memory of the PyTorch runs is the sampled resident-set growth (the OS's view).
"""
import os
import sys
import types

from speed_common import compare, parser, timed, train_step


def timm_stand_in():
    """timm.models.layers with the two symbols the official code uses, if timm is not installed."""
    try:
        import timm.models.layers  # noqa: F401
        return
    except ImportError:
        pass
    import torch

    class DropPath(torch.nn.Module):
        def __init__(self, p=0.0):
            super().__init__()
            self.p = p

        def forward(self, x):
            if self.p == 0.0 or not self.training:
                return x
            keep = (torch.rand(x.shape[0], *([1] * (x.dim() - 1)), dtype=x.dtype) >= self.p).to(x.dtype)
            return x * keep / (1 - self.p)

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath = DropPath
    layers.trunc_normal_ = torch.nn.init.trunc_normal_
    for name, module in (("timm", types.ModuleType("timm")), ("timm.models", types.ModuleType("timm.models")),
                         ("timm.models.layers", layers)):
        sys.modules[name] = module


def official_step(args, mode):
    reversible = mode == "reversible"
    import torch
    torch.set_num_threads(args.threads)
    timm_stand_in()
    sys.path.insert(0, args.checkout)
    from models import revcol
    torch.manual_seed(0)
    factory = {"t": revcol.revcol_tiny, "s": revcol.revcol_small, "b": revcol.revcol_base}[args.model]
    model = factory(save_memory=reversible, inter_supv=False, drop_path=0.0, num_classes=1000, kernel_size=3)
    step = train_step(model, args, lambda out: out[0][-1])
    return timed(step, args, bench="official", library="official", model=args.model, mode=mode)


def main():
    args = parser(__doc__, "path of a checkout of megvii-research/RevCol (the directory with models/)", ["t", "s", "b"],
                  "t", 3).parse_args()
    if not os.path.isfile(os.path.join(args.checkout, "models", "revcol.py")):
        sys.exit(f"speed_revcol.py: no models/revcol.py in {args.checkout}; pass a checkout of megvii-research/RevCol")
    compare(args, "speed_revcol", "revcol-" + args.model, "official", official_step, ("plain", "reversible"))


if __name__ == "__main__":
    main()
