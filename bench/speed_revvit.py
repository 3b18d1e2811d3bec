#!/usr/bin/env python3
"""Training-step speed of Rev-ViT: rev (Stored and Reversible) against minREV's PyTorch code.

    python3 bench/speed_revvit.py PATH/TO/minREV-checkout [--rev build/examples/rev]
        [--model s] [--batch 8] [--res 224] [--threads 2] [--steps 3]

One run, one machine, one thread count for both libraries (REV_NUM_THREADS and
torch.set_num_threads). A step is forward + backward of sum(logits * dout) in train mode. minREV's
model (karttikeya/minREV rev.py, imported from the checkout, nothing of it copied here) is the same
network as rev's `revvit-minrev-<model>` (patch 16, S: 384 wide, 12 blocks, 6 heads; B: 768, 12,
12; L: 1024, 24, 16; its layout and keys), timed with its vanilla backward (no_custom_backward:
ordinary autograd through the blocks) and with its reversible backward (RevBackProp). Both compute
every parameter's gradient. Prints one JSON line per measurement, then one with the ratios:
  rev_reversible / rev_stored
  rev_reversible / minrev_vanilla, rev_reversible / minrev_reversible
  minrev_reversible / minrev_vanilla   (for context)
Peak memory of the PyTorch runs is the sampled resident-set growth (the OS's view).
"""
import os
import sys

from speed_common import compare, parser, timed, train_step

SIZES = {"s": (384, 6, 12), "b": (768, 12, 12), "l": (1024, 16, 24)}  # width, heads, depth


def minrev_step(args, mode):
    import torch
    torch.set_num_threads(args.threads)
    sys.path.insert(0, args.checkout)
    import rev as minrev
    width, heads, depth = SIZES[args.model]
    torch.manual_seed(0)
    model = minrev.RevViT(embed_dim=width, n_head=heads, depth=depth, patch_size=(16, 16),
                          image_size=(args.res, args.res), num_classes=1000)
    model.no_custom_backward = mode == "vanilla"
    step = train_step(model, args)
    return timed(step, args, bench="minrev", library="minrev", model=args.model, mode=mode)


def main():
    args = parser(__doc__, "path of a checkout of karttikeya/minREV (the directory with rev.py)", sorted(SIZES), "s",
                  3).parse_args()
    if not os.path.isfile(os.path.join(args.checkout, "rev.py")):
        sys.exit(f"speed_revvit.py: no rev.py in {args.checkout}; pass a checkout of karttikeya/minREV")
    compare(args, "speed_revvit", "revvit-minrev-" + args.model, "minrev", minrev_step, ("vanilla", "reversible"))


if __name__ == "__main__":
    main()
