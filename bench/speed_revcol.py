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
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import types


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssSampler:
    def __init__(self):
        self.start = self.peak = resident_bytes()
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while self.running:
            self.peak = max(self.peak, resident_bytes())
            time.sleep(0.001)

    def stop(self):
        self.running = False
        self.thread.join()
        return max(0, self.peak - self.start)


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


def rev_step(args, mode):
    env = dict(os.environ, REV_NUM_THREADS=str(args.threads))
    cmd = [args.rev, "bench", "revcol-" + args.model, "--" + mode, "--batch", str(args.batch), "--res", str(args.res),
           "--steps", str(args.steps), "--json"]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    r["library"] = "rev"
    return r


def official_step(args, reversible):
    import torch
    torch.set_num_threads(args.threads)
    timm_stand_in()
    sys.path.insert(0, args.checkout)
    from models import revcol
    torch.manual_seed(0)
    factory = {"t": revcol.revcol_tiny, "s": revcol.revcol_small, "b": revcol.revcol_base}[args.model]
    model = factory(save_memory=reversible, inter_supv=False, drop_path=0.0, num_classes=1000, kernel_size=3)
    model.train()
    x = torch.rand(args.batch, 3, args.res, args.res)
    dout = (torch.rand(args.batch, 1000) * 2 - 1) * 1e-3

    def step():
        model.zero_grad(set_to_none=False)
        logits, _ = model(x)
        (logits[-1] * dout).sum().backward()

    step()  # warm-up
    rss = RssSampler()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak = rss.stop()
    return {"bench": "official", "library": "official", "model": args.model,
            "mode": "reversible" if reversible else "plain", "batch": args.batch, "res": args.res,
            "threads": args.threads, "steps": args.steps, "step_s_median": statistics.median(times),
            "step_s_min": min(times), "os_peak_rss_mb": peak / 1048576, "torch": torch.__version__}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkout", help="path of a checkout of megvii-research/RevCol (the directory with models/)")
    p.add_argument("--rev", default=os.path.join(os.path.dirname(__file__), "..", "build", "examples", "rev"))
    p.add_argument("--model", default="t", choices=["t", "s", "b"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    if not os.path.isfile(os.path.join(args.checkout, "models", "revcol.py")):
        sys.exit(f"speed_revcol.py: no models/revcol.py in {args.checkout}; pass a checkout of megvii-research/RevCol")
    if not os.access(args.rev, os.X_OK):
        sys.exit(f"speed_revcol.py: {args.rev} is not an executable; build it with cmake --build build --target rev_tool")

    results = {}
    for mode in ("stored", "reversible"):
        r = rev_step(args, mode)
        results["rev_" + mode] = r
        print(json.dumps(r), flush=True)
    for reversible in (False, True):
        r = official_step(args, reversible)
        results["official_" + r["mode"]] = r
        print(json.dumps(r), flush=True)
    t = {k: v["step_s_median"] for k, v in results.items()}
    print(json.dumps({"bench": "speed_revcol", "model": args.model, "batch": args.batch, "res": args.res,
                      "threads": args.threads,
                      "rev_reversible_over_rev_stored": t["rev_reversible"] / t["rev_stored"],
                      "rev_reversible_over_official_plain": t["rev_reversible"] / t["official_plain"],
                      "rev_reversible_over_official_reversible": t["rev_reversible"] / t["official_reversible"],
                      "rev_stored_over_official_plain": t["rev_stored"] / t["official_plain"],
                      "official_reversible_over_official_plain": t["official_reversible"] / t["official_plain"]}))


if __name__ == "__main__":
    main()
