#!/usr/bin/env python3
"""Goldens for dcl's optimisers and schedules from torch.optim (PyTorch 1.13):
Adam (L2 weight decay), AdamW, SGD (momentum, nesterov, weight decay) on a
fixed parameter vector with a fixed sequence of gradients, and the learning
rates of StepLR, CosineAnnealingLR and a linear warm-up.
Usage: /usr/bin/python3 tools/make_optim_goldens.py [--out tests/fixtures/optim/optim.json]"""
import argparse, json, math
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--out", default="tests/fixtures/optim/optim.json")
a = ap.parse_args()
g = torch.Generator().manual_seed(3)
n, steps = 37, 6
p0 = torch.randn(n, generator=g, dtype=torch.float64)
grads = [torch.randn(n, generator=g, dtype=torch.float64) for _ in range(steps)]
lrs = [1e-2, 1e-2, 5e-3, 5e-3, 2e-3, 2e-3]
out = {"p0": p0.tolist(), "grads": [x.tolist() for x in grads], "lrs": lrs, "cases": {}}
cases = {
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=5e-2),
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9, weight_decay=1e-3),
    "sgd_nesterov": lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9, nesterov=True, weight_decay=0.0),
    "sgd_plain": lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.0, weight_decay=1e-4),
}
for name, make in cases.items():
    p = torch.nn.Parameter(p0.clone())
    opt = make([p])
    traj = []
    for s in range(steps):
        for grp in opt.param_groups:
            grp["lr"] = lrs[s]
        p.grad = grads[s].clone()
        opt.step()
        traj.append(p.detach().clone().tolist())
    out["cases"][name] = traj

def sched_lrs(make, total):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sch = make(opt)
    r = []
    for _ in range(total):
        r.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    return r
out["sched"] = {
    "step": sched_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.5), 14),
    "cosine": sched_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.01), 12),
    "warmup": sched_lrs(lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=4), 8),
}
with open(a.out, "w") as f:
    json.dump(out, f, indent=0)
print("wrote", a.out)
