#!/usr/bin/python3
"""PyTorch reference for train::AdamW, SGD parameter groups, cosine_schedule, clip_grad_norm_ and
ModelEMA (see common.py): several steps of torch.optim.AdamW / SGD on fixed gradients, the lr of
SequentialLR(LinearLR, CosineAnnealingLR) per step, torch.nn.utils.clip_grad_norm_, and timm's EMA."""
import math

import torch

from common import save, seeded

seeded(7)
out = {}
STEPS = 4
w0 = torch.randn(4, 3, dtype=torch.float64)
b0 = torch.randn(1, dtype=torch.float64)
out["w0"], out["b0"] = w0, b0
gw = [torch.randn(4, 3, dtype=torch.float64) for _ in range(STEPS)]
gb = [torch.randn(1, dtype=torch.float64) for _ in range(STEPS)]
for i in range(STEPS):
    out[f"gw{i}"], out[f"gb{i}"] = gw[i], gb[i]


def run(name, make):
    w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    opt = make(w, b)
    for i in range(STEPS):
        w.grad, b.grad = gw[i].clone(), gb[i].clone()
        opt.step()
        out[f"{name}.w{i + 1}"], out[f"{name}.b{i + 1}"] = w.detach().clone(), b.detach().clone()
    return opt


# AdamW: defaults but lr; amsgrad with other betas/eps/decay; two groups (the scalar at lr / 10, no decay).
run("adamw", lambda w, b: torch.optim.AdamW([w, b], lr=1e-2))
opt = run("adamw_amsgrad", lambda w, b: torch.optim.AdamW([w, b], lr=5e-3, betas=(0.8, 0.99), eps=1e-6,
                                                           weight_decay=0.1, amsgrad=True))
st = opt.state[opt.param_groups[0]["params"][0]]
out["adamw_amsgrad.exp_avg"], out["adamw_amsgrad.exp_avg_sq"] = st["exp_avg"], st["exp_avg_sq"]
out["adamw_amsgrad.max_exp_avg_sq"] = st["max_exp_avg_sq"]
run("adamw_groups", lambda w, b: torch.optim.AdamW([{"params": [w], "weight_decay": 0.05},
                                                    {"params": [b], "lr": 2e-3, "weight_decay": 0.0}], lr=2e-2))
# SGD with Nesterov momentum and weight decay; the scalar at lr / 10 without weight decay.
run("sgd_groups", lambda w, b: torch.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.01, "weight_decay": 0.0}],
                                               lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4))

# Cosine with linear warm-up: base 0.5, 5 warm-up steps from 0.05, 20 steps in all, floor 1e-3.
p = torch.zeros(1, requires_grad=True)
opt = torch.optim.SGD([p], lr=0.5)
sched = torch.optim.lr_scheduler.SequentialLR(opt, [
    torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=5),
    torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=15, eta_min=1e-3)], milestones=[5])
lrs = []
for t in range(21):
    lrs.append(opt.param_groups[0]["lr"])
    opt.step()
    sched.step()
out["schedule.lr"] = torch.tensor(lrs, dtype=torch.float64)
# Without warm-up: CosineAnnealingLR alone (base 0.1, 10 steps, floor 0).
opt = torch.optim.SGD([p], lr=0.1)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
lrs = []
for t in range(11):
    lrs.append(opt.param_groups[0]["lr"])
    opt.step()
    sched.step()
out["schedule_nowarmup.lr"] = torch.tensor(lrs, dtype=torch.float64)

# clip_grad_norm_ over three gradients, for several max_norm / norm_type.
g = [torch.randn(4, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64),
     torch.randn(2, 2, 2, dtype=torch.float64)]
for i, t in enumerate(g):
    out[f"clip.g{i}"] = t
for name, max_norm, norm_type in [("l2", 1.0, 2.0), ("l2_noclip", 100.0, 2.0), ("inf", 0.5, math.inf),
                                  ("l3", 0.7, 3.0)]:
    ps = [torch.zeros_like(t, requires_grad=True) for t in g]
    for q, t in zip(ps, g):
        q.grad = t.clone()
    total = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type)
    out[f"clip.{name}.total"] = total.reshape(1)
    for i, q in enumerate(ps):
        out[f"clip.{name}.g{i}"] = q.grad.clone()


# EMA of a parameter and a buffer over 5 updates, transcribing timm: ModelEmaV2._update
# (ema = ema * decay + (1 - decay) * w) and ModelEmaV3.get_decay (warm-up).
def timm_decay(step, decay, warmup, gamma=1.0, power=2 / 3, min_decay=0.0):
    if not warmup:
        return decay
    cur = 1 - (1 + step / gamma) ** -power
    return max(min(cur, decay), min_decay)


ws = [torch.randn(3, 2, dtype=torch.float64) for _ in range(6)]
rs = [torch.randn(2, dtype=torch.float64) for _ in range(6)]
for i in range(6):
    out[f"ema.w{i}"], out[f"ema.r{i}"] = ws[i], rs[i]
for name, decay, warmup in [("plain", 0.9, False), ("warmup", 0.99, True)]:
    ew, er = ws[0].clone(), rs[0].clone()
    for n in range(1, 6):
        d = timm_decay(n, decay, warmup)
        ew = ew * d + (1.0 - d) * ws[n]
        er = er * d + (1.0 - d) * rs[n]
        out[f"ema.{name}.w{n}"], out[f"ema.{name}.r{n}"] = ew.clone(), er.clone()

save("optim", out, {"torch": torch.__version__})
