#!/usr/bin/python3
"""tests/ref/optim_ref.py: torch.optim reference trajectories for tests/test_optim.c.

Writes tests/ref/optim_ref.h (run from the repository root:
/usr/bin/python3 tests/ref/optim_ref.py). Run once; the header is committed and the tests
never need torch or Python.

Two float64 parameters, "w" (3,4) and "b" (5), start from fixed random values. For 12
steps each case sets every gradient by hand from a fixed random table (scaled by a
different factor per step, so global-norm clipping bites on some steps and not on
others), optionally clips with torch.nn.utils.clip_grad_norm_ and optionally sets the
learning rate to lr0 * gamma**t (an exponential schedule applied by hand), then calls
torch.optim.<Kind>.step(). The parameters after every step (w then b, row-major) and the
norms clip_grad_norm_ returned are written out.

Also written: lr values of torch.optim.lr_scheduler StepLR, ExponentialLR and
CosineAnnealingLR, for the schedule tests.
"""
import os
import random

import torch

torch.set_default_dtype(torch.float64)

STEPS = 12
SHAPES = [("w", (3, 4)), ("b", (5,))]
NUMEL = sum(torch.Size(s).numel() for _, s in SHAPES)

rnd = random.Random(20261127)
INIT = [rnd.uniform(-1.0, 1.0) for _ in range(NUMEL)]
SCALES = [0.5, 3.0, 0.1, 1.0, 5.0, 0.2, 2.0, 0.05, 4.0, 1.5, 0.3, 8.0]
GRADS = [[SCALES[t] * rnd.uniform(-1.0, 1.0) for _ in range(NUMEL)] for t in range(STEPS)]

# name, kind, torch keyword arguments, clip max_norm (0: none), lr gamma (0: constant lr)
CASES = [
    ("sgd", "sgd", dict(lr=0.1), 0.0, 0.0),
    ("sgd_momentum", "sgd", dict(lr=0.05, momentum=0.9), 0.0, 0.0),
    ("sgd_momentum_dampening_wd", "sgd",
     dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01), 0.0, 0.0),
    ("sgd_nesterov_wd", "sgd",
     dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.001), 0.0, 0.0),
    ("sgd_nesterov_clip", "sgd", dict(lr=0.1, momentum=0.9, nesterov=True), 1.0, 0.0),
    ("adam", "adam", dict(lr=0.01), 0.0, 0.0),
    ("adam_wd_betas", "adam",
     dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1), 0.0, 0.0),
    ("adam_clip_explr", "adam", dict(lr=0.01), 1.0, 0.9),
    ("adamw", "adamw", dict(lr=0.01, weight_decay=0.05), 0.0, 0.0),
    ("adamw_clip", "adamw",
     dict(lr=0.005, betas=(0.85, 0.99), weight_decay=0.2), 0.5, 0.0),
    ("rmsprop", "rmsprop", dict(lr=0.01), 0.0, 0.0),
    ("rmsprop_momentum", "rmsprop", dict(lr=0.01, momentum=0.7), 0.0, 0.0),
    ("rmsprop_centered_momentum_wd", "rmsprop",
     dict(lr=0.01, alpha=0.9, eps=1e-6, centered=True, momentum=0.5, weight_decay=0.01),
     0.0, 0.0),
    ("rmsprop_centered_momentum_clip", "rmsprop",
     dict(lr=0.005, alpha=0.95, centered=True, momentum=0.9), 1.0, 0.0),
    ("adagrad", "adagrad", dict(lr=0.1), 0.0, 0.0),
    ("adagrad_lr_decay_init_wd", "adagrad",
     dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1, eps=1e-10,
          weight_decay=0.02), 0.0, 0.0),
    ("adagrad_clip_lr_decay", "adagrad",
     dict(lr=0.05, lr_decay=0.05, initial_accumulator_value=0.5), 1.0, 0.0),
]

KINDS = {"sgd": ("TG_SGD", torch.optim.SGD), "adam": ("TG_ADAM", torch.optim.Adam),
         "adamw": ("TG_ADAMW", torch.optim.AdamW), "rmsprop": ("TG_RMSPROP", torch.optim.RMSprop),
         "adagrad": ("TG_ADAGRAD", torch.optim.Adagrad)}


def run(kind, kw, clip, gamma):
    params = []
    off = 0
    for _, shape in SHAPES:
        n = torch.Size(shape).numel()
        params.append(torch.nn.Parameter(torch.tensor(INIT[off:off + n]).reshape(shape)))
        off += n
    opt = KINDS[kind][1](params, **kw)
    lr0 = kw["lr"]
    traj, norms = [], []
    for t in range(STEPS):
        off = 0
        for p in params:
            n = p.numel()
            p.grad = torch.tensor(GRADS[t][off:off + n]).reshape(p.shape)
            off += n
        if clip:
            norms.append(torch.nn.utils.clip_grad_norm_(params, clip).item())
        else:
            norms.append(0.0)
        if gamma:
            for g in opt.param_groups:
                g["lr"] = lr0 * gamma ** t
        opt.step()
        traj.append([v for p in params for v in p.detach().reshape(-1).tolist()])
    return traj, norms


def cfg_fields(kind, kw):
    """tg_optim_config initialiser: torch's defaults for kind, overridden by kw."""
    d = dict(lr=kw["lr"], weight_decay=0.0, momentum=0.0, dampening=0.0, nesterov=False,
             beta1=0.9, beta2=0.999, eps=0.0, alpha=0.99, centered=False, lr_decay=0.0,
             initial_accumulator_value=0.0)
    d["eps"] = {"sgd": 0.0, "adam": 1e-8, "adamw": 1e-8, "rmsprop": 1e-8, "adagrad": 1e-10}[kind]
    if kind == "adamw":
        d["weight_decay"] = 1e-2
    for k, v in kw.items():
        if k == "betas":
            d["beta1"], d["beta2"] = v
        else:
            d[k] = v
    f = lambda x: "true" if x is True else "false" if x is False else repr(float(x))
    return ("{ .kind = %s, .lr = %s, .weight_decay = %s, .momentum = %s, .dampening = %s,\n"
            "          .nesterov = %s, .beta1 = %s, .beta2 = %s, .eps = %s, .alpha = %s,\n"
            "          .centered = %s, .lr_decay = %s, .initial_accumulator_value = %s }"
            % (KINDS[kind][0], f(d["lr"]), f(d["weight_decay"]), f(d["momentum"]),
               f(d["dampening"]), f(d["nesterov"]), f(d["beta1"]), f(d["beta2"]),
               f(d["eps"]), f(d["alpha"]), f(d["centered"]), f(d["lr_decay"]),
               f(d["initial_accumulator_value"])))


def arr(vals, indent="    "):
    out, line = [], indent
    for v in vals:
        s = repr(float(v)) + ","
        if len(line) + len(s) + 1 > 96:
            out.append(line.rstrip())
            line = indent
        line += s + " "
    out.append(line.rstrip())
    return "\n".join(out)


def sched_values(make, n):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    s = make(opt)
    vals = []
    for _ in range(n):
        vals.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    return vals


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    L = []
    L.append("/* tests/ref/optim_ref.h: generated by tests/ref/optim_ref.py with torch %s;"
             " do not edit. */" % torch.__version__)
    L.append("#ifndef TG_TESTS_OPTIM_REF_H\n#define TG_TESTS_OPTIM_REF_H\n")
    L.append("#include <stdbool.h>\n\n#include \"optim/optim.h\"\n")
    L.append("#define OPTIM_REF_STEPS %d\n#define OPTIM_REF_NUMEL %d" % (STEPS, NUMEL))
    L.append("/* parameters: \"w\" (3,4) then \"b\" (5), row-major */\n")
    L.append("static const double optim_ref_init[OPTIM_REF_NUMEL] = {\n%s\n};\n" % arr(INIT))
    L.append("/* gradient set by hand before step t */")
    L.append("static const double optim_ref_grads[OPTIM_REF_STEPS][OPTIM_REF_NUMEL] = {")
    for t in range(STEPS):
        L.append("    {\n%s\n    }," % arr(GRADS[t], "        "))
    L.append("};\n")
    L.append("typedef struct optim_ref_case {\n"
             "    const char     *name;\n"
             "    tg_optim_config cfg;\n"
             "    double          clip;    /* clip_grad_norm_ max_norm before a step; 0: none */\n"
             "    double          gamma;   /* lr = cfg.lr * gamma^t before step t; 0: constant */\n"
             "    double          norm[OPTIM_REF_STEPS];                   /* clip's return */\n"
             "    double          param[OPTIM_REF_STEPS][OPTIM_REF_NUMEL]; /* after step t */\n"
             "} optim_ref_case;\n")
    L.append("static const optim_ref_case optim_ref_cases[] = {")
    for name, kind, kw, clip, gamma in CASES:
        traj, norms = run(kind, kw, clip, gamma)
        L.append("    {\n        \"%s\",\n        %s,\n        %r, %r,\n        {\n%s\n        },"
                 % (name, cfg_fields(kind, kw), float(clip), float(gamma),
                    arr(norms, "            ")))
        L.append("        {")
        for t in range(STEPS):
            L.append("            {\n%s\n            }," % arr(traj[t], "                "))
        L.append("        },\n    },")
    L.append("};\n")

    sl = torch.optim.lr_scheduler
    step_vals = sched_values(lambda o: sl.StepLR(o, step_size=3, gamma=0.5), 20)
    exp_vals = sched_values(lambda o: sl.ExponentialLR(o, gamma=0.9), 20)
    cos_vals = sched_values(lambda o: sl.CosineAnnealingLR(o, T_max=10, eta_min=0.001), 11)
    L.append("/* torch.optim.lr_scheduler with base lr 0.1: StepLR(step_size=3, gamma=0.5),\n"
             "   ExponentialLR(gamma=0.9), CosineAnnealingLR(T_max=10, eta_min=0.001) */")
    L.append("static const double optim_ref_steplr[20] = {\n%s\n};" % arr(step_vals))
    L.append("static const double optim_ref_explr[20] = {\n%s\n};" % arr(exp_vals))
    L.append("static const double optim_ref_coslr[11] = {\n%s\n};\n" % arr(cos_vals))
    L.append("#endif /* TG_TESTS_OPTIM_REF_H */")
    with open(os.path.join(here, "optim_ref.h"), "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
