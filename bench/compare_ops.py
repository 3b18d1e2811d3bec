#!/usr/bin/python3
"""Runs bench_ops and bench/torch_ops.py with the same thread count and prints rev/PyTorch time
ratios per case: one JSON line each, then a table.

    /usr/bin/python3 bench/compare_ops.py --bench build/bench/bench_ops [--threads N] [--rounds R]
                                          [--min-time SECONDS] [--filter TEXT] [--clock wall|cpu] [--save FILE]

ratio = rev_ms / torch_ms (below 1: rev is faster). With --rounds R > 1 both benchmarks run R
times, alternating, and each case keeps the smallest of its R medians: on a shared machine this
discards rounds that other processes slowed down. --clock cpu times process CPU time on both
sides (use it with --threads 1 on a busy machine). --save writes the JSON lines to FILE too.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run_lines(cmd, env):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def best(rounds):
    """{(op, shape, pass): record with the smallest ms over the rounds}"""
    keep = {}
    for lines in rounds:
        for r in lines:
            k = (r["op"], r["shape"], r["pass"])
            if k not in keep or r["ms"] < keep[k]["ms"]:
                keep[k] = r
    return keep


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default=os.path.join(HERE, "..", "build", "bench", "bench_ops"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--min-time", default="0.25")
    ap.add_argument("--filter", default="")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--save", help="also write the JSON lines to this file")
    a = ap.parse_args()

    env = dict(os.environ, REV_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    common = ["--threads", str(a.threads), "--min-time", a.min_time, "--filter", a.filter, "--clock", a.clock]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write(subprocess.run([a.bench, "--list", "--filter", a.filter], check=True, capture_output=True,
                               text=True).stdout)
        cases = f.name
    try:
        rev_rounds, torch_rounds = [], []
        for i in range(a.rounds):
            print(f"round {i + 1}/{a.rounds}: rev ...", file=sys.stderr, flush=True)
            rev_rounds.append(run_lines([a.bench] + common, env))
            print(f"round {i + 1}/{a.rounds}: PyTorch ...", file=sys.stderr, flush=True)
            torch_rounds.append(run_lines([a.python, os.path.join(HERE, "torch_ops.py"), "--cases", cases] + common, env))
    finally:
        os.unlink(cases)
    rev, torch = best(rev_rounds), best(torch_rounds)

    rows = []
    for k, r in rev.items():
        if k not in torch:
            continue
        t = torch[k]
        rows.append({"op": r["op"], "name": r["name"], "shape": r["shape"], "pass": r["pass"], "threads": a.threads,
                     "rev_ms": r["ms"], "torch_ms": t["ms"], "ratio": round(r["ms"] / t["ms"], 3),
                     "rev_gflops": r["gflops"], "torch_gflops": t["gflops"]})
    saved = open(a.save, "w") if a.save else None
    for row in rows:
        line = json.dumps(row)
        print(line)
        if saved:
            saved.write(line + "\n")
    if saved:
        saved.close()

    print(f"\n{'op':9} {'name':22} {'shape':40} {'pass':4} {'rev ms':>9} {'torch ms':>9} {'ratio':>6}")
    for row in rows:
        flag = "  <-- slower than 2x" if row["ratio"] > 2 else ""
        print(f"{row['op']:9} {row['name'][:22]:22} {row['shape'][:40]:40} {row['pass']:4} {row['rev_ms']:9.3f} "
              f"{row['torch_ms']:9.3f} {row['ratio']:6.2f}{flag}")
    if rows:
        total_rev = sum(r["rev_ms"] for r in rows)
        total_torch = sum(r["torch_ms"] for r in rows)
        geo = math.exp(sum(math.log(r["ratio"]) for r in rows) / len(rows))
        print(f"\n{len(rows)} timings, {a.threads} threads: total {total_rev:.2f} ms (rev) vs {total_torch:.2f} ms "
              f"(PyTorch), ratio of totals {total_rev / total_torch:.2f}, geometric mean of ratios {geo:.2f}")


if __name__ == "__main__":
    main()
