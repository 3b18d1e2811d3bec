#!/usr/bin/python3
"""PyTorch's times for the cases of bench_ops (the same shapes, the same JSON lines).

    /usr/bin/python3 bench/torch_ops.py --cases CASES.jsonl [--threads N] [--min-time SECONDS] [--filter TEXT]
                                        [--clock wall|cpu]

CASES.jsonl is the output of `bench_ops --list`. Each case prints two lines,
{"op", "name", "shape", "pass": "fwd"|"bwd", "ms": median, "threads", "gflops"}, where the
forward runs under torch.no_grad() and the backward is torch.autograd.grad of a kept graph
with respect to every input that bench_ops differentiates (input, weight, bias).
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


clock = time.perf_counter


def time_it(f, min_time):
    """Median milliseconds of f over enough runs to fill about min_time seconds (>= 5 runs),
    after two warm-up runs (the same rule as bench_ops)."""
    f()
    t0 = clock()
    f()
    first = clock() - t0
    reps = max(5, min(200, int(min_time / max(first, 1e-6))))
    ms = []
    for _ in range(reps):
        s = clock()
        f()
        ms.append((clock() - s) * 1e3)
    return statistics.median_low(ms)


def uniform(*shape):
    return torch.rand(*shape) * 2 - 1


def run(c, min_time):
    """Yields (pass, ms, flops) for one case."""
    op = c["op"]
    if op == "conv2d":
        x = uniform(c["n"], c["c_in"], c["h"], c["w"]).requires_grad_()
        w = uniform(c["c_out"], c["c_in"] // c["groups"], c["k"], c["k"]).requires_grad_()
        b = uniform(c["c_out"]).requires_grad_() if c["bias"] else None
        args = dict(stride=c["stride"], padding=c["pad"], groups=c["groups"])
        with torch.no_grad():
            fwd = time_it(lambda: F.conv2d(x, w, b, **args), min_time)
        y = F.conv2d(x, w, b, **args)
        flops = 2.0 * y.numel() * (c["c_in"] // c["groups"]) * c["k"] ** 2
        inputs = (x, w) + ((b,) if b is not None else ())
    elif op == "batchnorm":
        x = uniform(c["n"], c["c_in"], c["h"], c["w"]).requires_grad_()
        weight, bias = uniform(c["c_in"]).requires_grad_(), uniform(c["c_in"]).requires_grad_()
        def bn():
            return F.batch_norm(x, None, None, weight, bias, training=True, eps=1e-3)
        with torch.no_grad():
            fwd = time_it(bn, min_time)
        y = bn()
        flops = 0
        inputs = (x, weight, bias)
    elif op == "linear":
        x = uniform(c["n"], c["c_in"]).requires_grad_()
        w = uniform(c["c_out"], c["c_in"]).requires_grad_()
        b = uniform(c["c_out"]).requires_grad_() if c["bias"] else None
        with torch.no_grad():
            fwd = time_it(lambda: F.linear(x, w, b), min_time)
        y = F.linear(x, w, b)
        flops = 2.0 * c["n"] * c["c_in"] * c["c_out"]
        inputs = (x, w) + ((b,) if b is not None else ())
    else:
        raise ValueError(f"unknown op {op}")
    yield "fwd", fwd, flops
    dy = uniform(*y.shape)
    yield "bwd", time_it(lambda: torch.autograd.grad(y, inputs, dy, retain_graph=True), min_time), 2 * flops


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", required=True, help="the output of bench_ops --list")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--min-time", type=float, default=0.25)
    ap.add_argument("--filter", default="")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: the process's CPU time (meaningful with --threads 1 on a busy machine)")
    a = ap.parse_args()
    global clock
    clock = time.process_time if a.clock == "cpu" else time.perf_counter
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(a.cases) as f:
        cases = [json.loads(line) for line in f if line.strip()]
    for c in cases:
        if a.filter not in f'{c["op"]} {c["name"]} {c["shape"]}':
            continue
        for pass_, ms, flops in run(c, a.min_time):
            print(json.dumps({"op": c["op"], "name": c["name"], "shape": c["shape"], "pass": pass_, "ms": round(ms, 4),
                              "threads": torch.get_num_threads(),
                              "gflops": round(flops / (ms * 1e6), 2) if flops else None}))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
