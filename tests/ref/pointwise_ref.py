#!/usr/bin/python3
"""tests/ref/pointwise_ref.py: PyTorch reference values for the pointwise ops sqrt, rsqrt, pow,
abs, clamp, softplus, maximum, minimum and where (tests/test_ops_pointwise_ref.c).

Writes tests/ref/pointwise_ref.h (run from the repository root:
/usr/bin/python3 tests/ref/pointwise_ref.py). Run once; the header is committed and the tests
never need torch or Python.

Each case draws its inputs with numpy (fixed seed) as float64, applies the op with torch in
float64 and again in float32 (the inputs rounded to float), and records the output and the
gradient of every differentiable input for the upstream gradient r (fixed random weights, also
rounded for float32): torch.autograd.grad(out, inputs, r), the gradient of sum(out * r). A case
is "smooth" when no input sits on a kink of the op, so a numerical gradient means something;
the edge cases (0 for sqrt, abs and pow, the bounds of clamp, ties of maximum and minimum,
signed zeros and NaN) are not.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refgen import dims, line_array, num, write_header  # noqa: E402

rng = np.random.RandomState(20261205)
NAN, INF = float("nan"), float("inf")


def rand(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape)


def signed(*shape, lo=0.2, hi=2.0):
    """uniform in +-[lo, hi]: away from a kink at 0"""
    return rng.uniform(lo, hi, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def ints(*shape, n=3):
    """small integers: many ties"""
    return rng.randint(0, n, size=shape).astype(np.float64)


def mask(*shape):
    """0 or 1, about half each"""
    return rng.randint(0, 2, size=shape).astype(np.float64)


CASES = []

# op name -> (number of inputs, which of them get a gradient, f(tensors, s, s2))
OPS = {
    "sqrt": (1, [True], lambda t, s, s2: torch.sqrt(t[0])),
    "rsqrt": (1, [True], lambda t, s, s2: torch.rsqrt(t[0])),
    "pow": (1, [True], lambda t, s, s2: torch.pow(t[0], s)),
    "abs": (1, [True], lambda t, s, s2: torch.abs(t[0])),
    "clamp": (1, [True], lambda t, s, s2: torch.clamp(t[0], s, s2)),
    "softplus": (1, [True], lambda t, s, s2: F.softplus(t[0])),
    "maximum": (2, [True, True], lambda t, s, s2: torch.maximum(t[0], t[1])),
    "minimum": (2, [True, True], lambda t, s, s2: torch.minimum(t[0], t[1])),
    "where": (3, [False, True, True], lambda t, s, s2: torch.where(t[0] != 0, t[1], t[2])),
}


def run(op, inputs, s, s2, dtype, r):
    _, diff, fn = OPS[op]
    ts = [torch.tensor(a, dtype=dtype, requires_grad=d) for a, d in zip(inputs, diff)]
    out = fn(ts, s, s2)
    live = [t for t in ts if t.requires_grad]
    grads = iter(torch.autograd.grad(out, live, torch.tensor(r, dtype=dtype)))
    gs = [next(grads).double().numpy() if t.requires_grad else None for t in ts]
    return out.detach().double().numpy(), gs


def case(op, inputs, s=0.0, s2=0.0, smooth=True):
    nin, diff, fn = OPS[op]
    assert len(inputs) == nin
    inputs = [np.asarray(a, dtype=np.float64) for a in inputs]
    shape = fn([torch.tensor(a) for a in inputs], s, s2).shape
    r = rng.uniform(-1, 1, size=tuple(shape))
    out64, g64 = run(op, inputs, s, s2, torch.float64, r)
    out32, g32 = run(op, inputs, s, s2, torch.float32, r)
    CASES.append(dict(op=op, s=s, s2=s2, smooth=smooth, inputs=inputs, r=r, out64=out64,
                      out32=out32, g64=g64, g32=g32))


# ---- smooth cases: random inputs away from the kinks --------------------------------------
case("sqrt", [rand(3, 4, lo=0.2, hi=3)])
case("rsqrt", [rand(3, 4, lo=0.2, hi=3)])
for p in (1.7, -1.3, 0.25, 2.0, 3.0, 0.5, -0.5, -1.0, -2.0, 1.0, 0.0):
    case("pow", [rand(2, 5, lo=0.2, hi=3)], s=p)
for p in (2.0, 3.0, -1.0, -2.0, 4.0):        # integer exponents: negative x too
    case("pow", [signed(2, 5)], s=p)
case("abs", [signed(3, 4)])
case("clamp", [signed(4, 5)], s=-0.5, s2=0.8)
case("clamp", [signed(3, 3)], s=-INF, s2=0.3)
case("clamp", [signed(3, 3)], s=-0.3, s2=INF)
case("softplus", [rand(3, 4, lo=-5, hi=5)])
case("softplus", [rand(2, 6, lo=-30, hi=15)])
case("softplus", [np.array([-1000.0, -100.0, -40.0, 15.0, 1000.0])])
for sa, sb in [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 1, 3), (4, 1)),
               ((1,), (2, 3))]:
    a, b = rand(*sa), rand(*sb)
    case("maximum", [a, b])
    case("minimum", [a, b])
case("where", [mask(3, 4), rand(3, 4), rand(3, 4)])
case("where", [mask(3, 1), rand(4), rand(3, 4)])
case("where", [mask(4), rand(3, 1), rand(1)])
case("where", [mask(2, 1, 3), rand(4, 1), rand(2, 4, 1)])

# ---- the edges ------------------------------------------------------------------------------
case("sqrt", [np.array([0.0, -0.0, 4.0, -1.0, INF, NAN])], smooth=False)
case("rsqrt", [np.array([0.0, -0.0, 4.0, -1.0, INF, NAN])], smooth=False)
ZERO = np.array([0.0, -0.0, 1.0, -2.0, 0.5, NAN])
for p in (0.0, 1.0, 2.0, 3.0, 0.5, -0.5, -1.0, -2.0, 1.5, 2.5, -1.5, 0.3):
    case("pow", [ZERO], s=p, smooth=False)
case("abs", [np.array([0.0, -0.0, 1.5, -1.5, NAN])], smooth=False)
BOUNDS = np.array([-1.0, -0.5, 0.0, 0.8, 1.0, NAN])
case("clamp", [BOUNDS], s=-0.5, s2=0.8, smooth=False)          # x on lo and on hi
case("clamp", [BOUNDS], s=0.8, s2=-0.5, smooth=False)          # lo > hi: hi everywhere
case("clamp", [BOUNDS], s=NAN, s2=0.8, smooth=False)           # NaN bound: NaN everywhere
case("clamp", [BOUNDS], s=-0.5, s2=NAN, smooth=False)
case("clamp", [BOUNDS], s=0.0, s2=0.0, smooth=False)
case("softplus", [np.array([0.0, NAN, INF, -INF])], smooth=False)
for sa, sb in [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3), (1,))]:
    a, b = ints(*sa), ints(*sb)
    case("maximum", [a, b], smooth=False)                      # ties: half to each
    case("minimum", [a, b], smooth=False)
NANS = np.array([NAN, 1.0, NAN, -0.0, 0.0])
OTHER = np.array([2.0, NAN, NAN, 0.0, -0.0])
case("maximum", [NANS, OTHER], smooth=False)
case("minimum", [NANS, OTHER], smooth=False)
case("where", [np.array([[0.0], [-0.0], [2.5], [NAN], [-1.0]]), rand(3), rand(5, 1)],
     smooth=False)                                              # -0 is false, NaN true


def main():
    out = []
    rows = []
    for k, c in enumerate(CASES):
        p = f"pwref_{k}"
        ins, nds, shps, g = [], [], [], [[], []]
        for i, a in enumerate(c["inputs"]):
            out.append(line_array(f"{p}_in{i}", a))
            ins.append(f"{p}_in{i}")
            nds.append(str(a.ndim))
            shps.append(dims(a))
            for d, key in enumerate(("g64", "g32")):
                if c[key][i] is None:
                    g[d].append("NULL")
                else:
                    out.append(line_array(f"{p}_grad{i}_{d}", c[key][i]))
                    g[d].append(f"{p}_grad{i}_{d}")
        out.append(line_array(f"{p}_r", c["r"]))
        out.append(line_array(f"{p}_out0", c["out64"]))
        out.append(line_array(f"{p}_out1", c["out32"]))
        n = len(c["inputs"])
        rows.append(f"""    {{ "{c['op']}", {num(c['s'])}, {num(c['s2'])}, {int(c['smooth'])}, {n},
      {{ {", ".join(nds)} }}, {{ {", ".join(shps)} }}, {{ {", ".join(ins)} }},
      {c['r'].size}, {p}_r, {{ {p}_out0, {p}_out1 }},
      {{ {{ {", ".join(g[0])} }}, {{ {", ".join(g[1])} }} }} }},
""")
    out.append("\nstatic const pwref_case pwref_cases[] = {\n" + "".join(rows) + "};\n")
    out.append(f"\nenum {{ PWREF_NCASES = {len(CASES)} }};\n")
    write_header("pointwise_ref.h", "".join(out), "float64 and float32", ["math.h"])


if __name__ == "__main__":
    main()
