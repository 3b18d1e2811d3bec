#!/usr/bin/env python3
"""Training-step speed of RevBiFPN: rev (Stored and Reversible) against the official PyTorch code.

    python3 bench/speed_revbifpn.py PATH/TO/RevBiFPN-checkout [--rev build/examples/rev]
        [--model s0] [--batch 8] [--res 224] [--threads 2] [--steps 5]

One run, one machine, one thread count for both libraries (REV_NUM_THREADS and
torch.set_num_threads). A step is forward + backward of sum(logits * dout) in train mode; the
official model is imported from the checkout (nothing of it is copied here) and timed in its
plain mode (disable_rev=True, disable_recomp=True: ordinary autograd) and in its reversible
mode. Prints one JSON line per measurement, then one with the ratios:
  rev_reversible / rev_stored            (target <= 1.25)
  rev_reversible / official_plain        (target <= 1.0)
  official_reversible / official_plain   (for context)
Peak memory of the PyTorch runs is the sampled resident-set growth (the OS's view).
"""
import os
import sys

from speed_common import compare, parser, timed, train_step


def official_step(args, mode):
    reversible = mode == "reversible"
    import torch
    torch.set_num_threads(args.threads)
    sys.path.insert(0, args.checkout)
    import revbifpn
    torch.manual_seed(0)
    build = getattr(revbifpn, "revbifpn_" + args.model)
    model = build(disable_rev=not reversible, disable_recomp=not reversible)
    model = model[0] if isinstance(model, tuple) else model
    step = train_step(model, args)
    return timed(step, args, bench="official", library="official", model=args.model, mode=mode)


def main():
    args = parser(__doc__, "path of a checkout of CerebrasResearch/RevBiFPN (the directory with revbifpn.py)",
                  [f"s{i}" for i in range(7)], "s0", 5).parse_args()
    if not os.path.isfile(os.path.join(args.checkout, "revbifpn.py")):
        sys.exit(f"speed_revbifpn.py: no revbifpn.py in {args.checkout}; pass a checkout of CerebrasResearch/RevBiFPN")
    compare(args, "speed_revbifpn", "revbifpn-" + args.model, "official", official_step, ("plain", "reversible"))


if __name__ == "__main__":
    main()
