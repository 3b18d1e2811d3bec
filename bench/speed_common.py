"""What the side-by-side speed scripts (speed_revbifpn.py, speed_revcol.py, speed_revvit.py) share:
rev's step through `rev bench`, the timing of a PyTorch step, and the OS's view of its peak memory
(the sampled resident-set growth)."""
import json
import os
import statistics
import subprocess
import threading
import time


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


def rev_step(args, model, mode):
    """`rev bench MODEL --MODE` at args' batch, resolution, steps and threads; its JSON result."""
    env = dict(os.environ, REV_NUM_THREADS=str(args.threads))
    cmd = [args.rev, "bench", model, "--" + mode, "--batch", str(args.batch), "--res", str(args.res),
           "--steps", str(args.steps), "--json"]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    r["library"] = "rev"
    return r


def timed(step, args, **fields):
    """Runs step() once to warm up, then args.steps times; the median and minimum time and the
    resident-set growth, with `fields` and args' batch, resolution, threads and steps."""
    import torch
    step()
    rss = RssSampler()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak = rss.stop()
    return dict(fields, batch=args.batch, res=args.res, threads=args.threads, steps=args.steps,
                step_s_median=statistics.median(times), step_s_min=min(times), os_peak_rss_mb=peak / 1048576,
                torch=torch.__version__)


def parser(description, checkout_help, models, default_model, default_steps):
    """The scripts' command line: the checkout, --rev, --model, --batch, --res, --threads, --steps."""
    import argparse
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkout", help=checkout_help)
    p.add_argument("--rev", default=os.path.join(os.path.dirname(__file__), "..", "build", "examples", "rev"))
    p.add_argument("--model", default=default_model, choices=models)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=default_steps)
    return p


def compare(args, bench, rev_model, baseline, baseline_step, baseline_modes):
    """rev's Stored and Reversible steps, then baseline_step(args, mode) for each of baseline_modes
    (the plain mode first), one JSON line each, then one with the ratios of the medians."""
    if not os.access(args.rev, os.X_OK):
        raise SystemExit(f"{bench}: {args.rev} is not an executable; build it with cmake --build build --target rev_tool")
    results = {}
    for mode in ("stored", "reversible"):
        results["rev_" + mode] = rev_step(args, rev_model, mode)
        print(json.dumps(results["rev_" + mode]), flush=True)
    for mode in baseline_modes:
        results[baseline + "_" + mode] = baseline_step(args, mode)
        print(json.dumps(results[baseline + "_" + mode]), flush=True)
    t = {k: v["step_s_median"] for k, v in results.items()}
    plain, reversible = (baseline + "_" + m for m in baseline_modes)
    print(json.dumps({"bench": bench, "model": args.model, "batch": args.batch, "res": args.res,
                      "threads": args.threads,
                      "rev_reversible_over_rev_stored": t["rev_reversible"] / t["rev_stored"],
                      f"rev_reversible_over_{plain}": t["rev_reversible"] / t[plain],
                      f"rev_reversible_over_{reversible}": t["rev_reversible"] / t[reversible],
                      f"rev_stored_over_{plain}": t["rev_stored"] / t[plain],
                      f"{reversible}_over_{plain}": t[reversible] / t[plain]}))


def train_step(model, args, logits_of=lambda out: out):
    """A training step of a PyTorch model on a random batch of args' size: forward, then the
    backward of sum(logits * dout) (logits_of picks the logits from the model's output)."""
    import torch
    model.train()
    x = torch.rand(args.batch, 3, args.res, args.res)
    dout = (torch.rand(args.batch, 1000) * 2 - 1) * 1e-3

    def step():
        model.zero_grad(set_to_none=False)
        (logits_of(model(x)) * dout).sum().backward()

    return step
