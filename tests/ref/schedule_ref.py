#!/usr/bin/python3
"""tests/ref/schedule_ref.py: torch.optim.lr_scheduler reference values for the warm-up
plus cosine and the reduce-on-plateau schedules of tests/test_optim.c.

Writes tests/ref/schedule_ref.h (run from the repository root:
/usr/bin/python3 tests/ref/schedule_ref.py). Run once; the header is committed and the
tests never need torch or Python.

Warm-up + cosine is torch's SequentialLR of LinearLR(start_factor, end_factor=1,
total_iters=W) then CosineAnnealingLR(T_max=total-W, eta_min) with milestone W; the lr
before each of steps 0..total is recorded (torch steps the scheduler after the
optimizer). Reduce-on-plateau is ReduceLROnPlateau(mode="min", ...) fed a fixed metric
sequence (with a NaN and an inf, which count as no improvement); the optimizer's lr after
each call is recorded.
"""
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refgen import num  # noqa: E402

torch.set_default_dtype(torch.float64)
# SequentialLR steps the cosine with an explicit epoch at the milestone (its closed form)
warnings.filterwarnings("ignore", category=UserWarning)
sl = torch.optim.lr_scheduler

# name, base lr, warmup steps W, total steps, start factor, eta_min
COSINE = [
    ("warmup5_of25", 0.1, 5, 25, 0.1, 0.001),
    ("warmup3_of13_third", 0.02, 3, 13, 1.0 / 3.0, 0.0),
    ("no_warmup_of20", 0.1, 0, 20, 1.0, 0.005),
    ("warmup1_of8", 1.0, 1, 8, 0.5, 0.1),
]

METRICS = [5.0, 4.0, 3.99, 3.995, 3.98, 4.2, 3.5, 3.5, 3.49, 3.6, 3.7, float("nan"), 3.8,
           3.9, 2.0, 2.5, float("inf"), 2.6, 2.7, 2.8, 1.9, 1.95, 1.96, 1.97, 1.98, 1.99,
           2.0, 2.1, 2.2, 2.3]

# name, base lr, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps
PLATEAU = [
    ("rel_patience2_cooldown1", 0.1, 0.5, 2, 1e-2, "rel", 1, 0.01, 1e-8),
    ("abs_patience0_cooldown2", 0.1, 0.3, 0, 0.05, "abs", 2, 0.002, 1e-8),
    ("defaults", 0.1, 0.1, 10, 1e-4, "rel", 0, 0.0, 1e-8),
    ("eps_stops_small_steps", 1.0, 0.9, 1, 0.0, "rel", 0, 0.0, 0.2),
]


def optimizer(lr):
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)


def cosine_values(lr, warmup, total, start, eta_min):
    opt = optimizer(lr)
    cos = sl.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=eta_min)
    if warmup > 0:
        lin = sl.LinearLR(opt, start_factor=start, end_factor=1.0, total_iters=warmup)
        sched = sl.SequentialLR(opt, [lin, cos], milestones=[warmup])
    else:
        sched = cos
    vals = []
    for _ in range(total + 1):
        vals.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return vals


def plateau_values(lr, factor, patience, threshold, mode, cooldown, min_lr, eps):
    opt = optimizer(lr)
    sched = sl.ReduceLROnPlateau(opt, mode="min", factor=factor, patience=patience,
                                 threshold=threshold, threshold_mode=mode,
                                 cooldown=cooldown, min_lr=min_lr, eps=eps)
    vals = []
    for m in METRICS:
        sched.step(m)
        vals.append(opt.param_groups[0]["lr"])
    return vals


def arr(vals, indent="    "):
    return ",\n".join(indent + ", ".join(num(v) for v in vals[i:i + 4])
                      for i in range(0, len(vals), 4))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    L = ["/* tests/ref/schedule_ref.h: written by tests/ref/schedule_ref.py with torch %s;\n"
         "   do not edit. */" % torch.__version__]
    L.append("#ifndef TG_TESTS_SCHEDULE_REF_H\n#define TG_TESTS_SCHEDULE_REF_H\n")
    L.append("#include <math.h>\n#include <stdint.h>\n")
    L.append("/* SequentialLR(LinearLR(start_factor, 1, W), CosineAnnealingLR(total - W,\n"
             "   eta_min), milestones=[W]); lr[t] is the lr of step t, t = 0..total */")
    L.append("typedef struct schedule_ref_cosine {\n"
             "    const char *name;\n"
             "    double      base_lr;\n"
             "    int64_t     warmup, total;\n"
             "    double      start, eta_min;\n"
             "    double      lr[32];\n"
             "} schedule_ref_cosine;\n")
    L.append("static const schedule_ref_cosine schedule_ref_cosines[] = {")
    for name, lr, w, total, start, eta in COSINE:
        assert total + 1 <= 32
        L.append("    { \"%s\", %s, %d, %d, %s, %s,\n      {\n%s\n      } },"
                 % (name, num(lr), w, total, num(start), num(eta),
                    arr(cosine_values(lr, w, total, start, eta), "        ")))
    L.append("};\n")
    L.append("/* ReduceLROnPlateau(mode=\"min\") fed schedule_ref_metrics; lr[i] is the lr after"
             "\n   step(metrics[i]) */")
    L.append("#define SCHEDULE_REF_NMETRICS %d" % len(METRICS))
    L.append("static const double schedule_ref_metrics[SCHEDULE_REF_NMETRICS] = {\n%s\n};\n"
             % arr(METRICS))
    L.append("typedef struct schedule_ref_plateau {\n"
             "    const char *name;\n"
             "    double      base_lr, factor;\n"
             "    int64_t     patience;\n"
             "    double      threshold;\n"
             "    int         threshold_abs;\n"
             "    int64_t     cooldown;\n"
             "    double      min_lr, eps;\n"
             "    double      lr[SCHEDULE_REF_NMETRICS];\n"
             "} schedule_ref_plateau;\n")
    L.append("static const schedule_ref_plateau schedule_ref_plateaus[] = {")
    for name, lr, factor, patience, thr, mode, cooldown, min_lr, eps in PLATEAU:
        vals = plateau_values(lr, factor, patience, thr, mode, cooldown, min_lr, eps)
        L.append("    { \"%s\", %s, %s, %d, %s, %d, %d, %s, %s,\n      {\n%s\n      } },"
                 % (name, num(lr), num(factor), patience, num(thr), mode == "abs", cooldown,
                    num(min_lr), num(eps), arr(vals, "        ")))
    L.append("};\n")
    L.append("#endif /* TG_TESTS_SCHEDULE_REF_H */")
    with open(os.path.join(here, "schedule_ref.h"), "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
