#!/usr/bin/env python3
"""Training-step speed and peak memory of RevBiFPN-S0 on the GPU: rev against the official PyTorch code.

    python3 bench/speed_revbifpn_cuda.py PATH/TO/RevBiFPN-checkout [--bench build/bench/bench_revbifpn_cuda]
        [--batch 64] [--res 224] [--steps 10]

One run, one GPU. A step is forward + backward of sum(logits * dout) in train mode, timed with CUDA
events after two warm-up steps. rev's Reversible and Stored modes are measured by our benchmark
binary (run first, before this process touches the GPU; its JSON lines are parsed); the official
model is imported from the checkout (nothing of it is copied here) and timed in its plain mode
(disable_rev=True, disable_recomp=True: ordinary autograd) and in its reversible mode.
Peak memory: rev's accounting of its tensors against torch.cuda.max_memory_allocated (both count
parameters, gradients, inputs and activations), and the device's view, the largest
total - free (cudaMemGetInfo / torch.cuda.mem_get_info) sampled after each step, which adds the CUDA
context, library workspaces and each allocator's cache. Prints one JSON line per measurement, then
one with the ratios:
  rev_reversible / official_reversible peak bytes   (target <= 1)
  rev_reversible / official_reversible step time    (target <= 1.5)
Achieved TFLOP/s uses the same FLOP count for both (our binary's: conv + linear MACs x 2 x 3, plus one
recompute of the reversible couplings and the neck in the reversible modes).
"""
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys


def rev_steps(args):
    cmd = [args.bench, "--batch", str(args.batch), "--res", str(args.res), "--steps", str(args.steps)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"speed_revbifpn_cuda.py: {' '.join(cmd)} failed ({run.returncode}):\n{run.stderr}")
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    flops = next(r for r in lines if r.get("part") == "flops")
    modes = {r["mode"]: r for r in lines if "mode" in r}
    return flops, modes


def official_steps(args, torch, reversible, flops):
    sys.path.insert(0, args.checkout)
    import revbifpn
    torch.manual_seed(0)
    model = revbifpn.revbifpn_s0(disable_rev=not reversible, disable_recomp=not reversible)
    model = model[0] if isinstance(model, tuple) else model
    model = model.cuda().train()
    x = torch.rand(args.batch, 3, args.res, args.res, device="cuda")
    dout = (torch.rand(args.batch, 1000, device="cuda") * 2 - 1) * 1e-3

    def step():
        model.zero_grad(set_to_none=False)
        (model(x) * dout).sum().backward()

    def used():
        free, total = torch.cuda.mem_get_info()
        return total - free

    gc.collect()  # the previous mode's model and its cached blocks go back before we measure
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    used_before = used()
    used_peak = used_before
    for _ in range(2):  # warm-up: cuDNN's algorithm choice, the caching allocator's first blocks
        step()
        torch.cuda.synchronize()
        used_peak = max(used_peak, used())
    torch.cuda.reset_peak_memory_stats()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(args.steps):
        start.record()
        step()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
        used_peak = max(used_peak, used())
    median = statistics.median(times)
    step_flops = flops["reversible_step_flops" if reversible else "stored_step_flops"]
    return {"bench": "revbifpn_cuda", "library": "official", "model": "S0",
            "mode": "reversible" if reversible else "plain", "batch": args.batch, "res": args.res,
            "steps": args.steps, "step_ms_median": median, "step_ms_min": min(times),
            "peak_bytes": torch.cuda.max_memory_allocated(), "reserved_peak_bytes": torch.cuda.max_memory_reserved(),
            "device_used_peak_bytes": used_peak, "device_used_before_bytes": used_before, "step_flops": step_flops,
            "tflops": step_flops / (median * 1e-3) / 1e12, "device": torch.cuda.get_device_name(),
            "torch": torch.__version__}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkout", help="path of a checkout of CerebrasResearch/RevBiFPN (the directory with revbifpn.py)")
    p.add_argument("--bench", default=os.path.join(os.path.dirname(__file__), "..", "build", "bench",
                                                   "bench_revbifpn_cuda"))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    if not os.path.isfile(os.path.join(args.checkout, "revbifpn.py")):
        sys.exit(f"speed_revbifpn_cuda.py: no revbifpn.py in {args.checkout}; "
                 "pass a checkout of CerebrasResearch/RevBiFPN")
    if not os.access(args.bench, os.X_OK):
        sys.exit(f"speed_revbifpn_cuda.py: {args.bench} is not an executable; build it with "
                 "cmake -DREV_WITH_CUDA=ON and cmake --build build --target bench_revbifpn_cuda")
    try:
        import torch
    except ImportError:
        sys.exit("speed_revbifpn_cuda.py: PyTorch is not installed; the official model needs torch with CUDA")
    if not torch.cuda.is_available():
        sys.exit(f"speed_revbifpn_cuda.py: torch {torch.__version__} sees no CUDA device "
                 f"(CUDA build: {torch.version.cuda}); this benchmark needs a GPU")

    flops, results = rev_steps(args)  # before torch allocates anything: the device holds only our process
    print(json.dumps(flops), flush=True)
    for mode in ("reversible", "stored"):
        print(json.dumps(results[mode]), flush=True)
    official = {}
    for reversible in (True, False):
        r = official_steps(args, torch, reversible, flops)
        official[r["mode"]] = r
        print(json.dumps(r), flush=True)
    rev_r, off_r = results["reversible"], official["reversible"]
    print(json.dumps({
        "bench": "speed_revbifpn_cuda", "model": "S0", "batch": args.batch, "res": args.res,
        "rev_reversible_over_official_reversible_peak_bytes": rev_r["peak_bytes"] / off_r["peak_bytes"],
        "rev_reversible_over_official_reversible_step_time": rev_r["step_ms_median"] / off_r["step_ms_median"],
        "rev_reversible_over_official_reversible_device_used":
            rev_r["device_used_peak_bytes"] / off_r["device_used_peak_bytes"],
        "rev_stored_over_official_plain_step_time":
            results["stored"]["step_ms_median"] / official["plain"]["step_ms_median"],
        "rev_stored_over_official_plain_peak_bytes": results["stored"]["peak_bytes"] / official["plain"]["peak_bytes"],
        "rev_reversible_tflops": rev_r["tflops"], "official_reversible_tflops": off_r["tflops"],
        "peak_target_met": rev_r["peak_bytes"] <= off_r["peak_bytes"],
        "time_target_met": rev_r["step_ms_median"] <= 1.5 * off_r["step_ms_median"]}))


if __name__ == "__main__":
    main()
