#!/usr/bin/python3
"""tests/ref/ops_ref.py: PyTorch reference values for the reduction, normalisation, shape and
loss ops (tests/test_ops_norm.c, tests/test_ops_layout.c).

Writes tests/ref/ops_ref.h (run from the repository root: /usr/bin/python3 tests/ref/ops_ref.py).
Run once; the header is committed and the tests never need torch or Python.

Every case is float64: inputs drawn with numpy (fixed seed), the op applied with torch,
loss = sum over outputs k of sum(out_k * r_k) with fixed random weights r, and the
gradients of that loss with respect to every input from torch's autograd. An op with several
outputs (chunk) has them flattened one after the other in `out` and `r`.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refgen import dims, line_array, write_header  # noqa: E402

torch.set_default_dtype(torch.float64)
rng = np.random.RandomState(20261204)


def rand(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape)


def ties(*shape):
    """small integers: rows with repeated maxima"""
    return rng.randint(0, 3, size=shape).astype(np.float64)


CASES = []


def case(op, inputs, fn, iarg=(0, 0), darg=0.0, smooth=True):
    """inputs: list of numpy arrays (None: absent); fn(tensors) -> tensor or list of tensors;
    smooth: False where the op has kinks at the inputs (ties of max): no numerical check"""
    ts = [None if a is None else torch.tensor(a, requires_grad=True) for a in inputs]
    outs = fn(ts)
    if not isinstance(outs, (list, tuple)):
        outs = [outs]
    rs = [torch.tensor(rng.uniform(-1, 1, size=tuple(o.shape))) for o in outs]
    loss = sum((o * r).sum() for o, r in zip(outs, rs))
    live = [t for t in ts if t is not None]
    grads = torch.autograd.grad(loss, live, allow_unused=True)
    git = iter(grads)
    gs = [None if t is None else next(git) for t in ts]
    gs = [None if t is None else (torch.zeros_like(t) if g is None else g)
          for t, g in zip(ts, gs)]
    CASES.append(dict(op=op, iarg=iarg, darg=darg, inputs=inputs, smooth=smooth,
                      out=np.concatenate([o.detach().numpy().ravel() for o in outs]),
                      r=np.concatenate([r.numpy().ravel() for r in rs]),
                      grads=[None if g is None else g.numpy() for g in gs]))


# reductions over one dim (keepdim)
case("mean_dim", [rand(3, 4, 5)], lambda t: t[0].mean(1, keepdim=True), (1, 0))
case("mean_dim", [rand(3, 4)], lambda t: t[0].mean(-1, keepdim=True), (-1, 0))
case("var_dim", [rand(3, 6)], lambda t: torch.var(t[0], -1, correction=0, keepdim=True), (-1, 0))
case("var_dim", [rand(4, 3)], lambda t: torch.var(t[0], 0, correction=1, keepdim=True), (0, 1))
case("var_dim", [rand(2, 3, 4)], lambda t: torch.var(t[0], -2, correction=1, keepdim=True),
     (-2, 1))
case("max_dim", [rand(3, 5)], lambda t: torch.max(t[0], -1, keepdim=True)[0], (-1, 0))
case("max_dim", [ties(2, 4, 3)], lambda t: torch.max(t[0], 1, keepdim=True)[0], (1, 0),
     smooth=False)
case("logsumexp_dim", [rand(3, 4)], lambda t: torch.logsumexp(t[0], -1, keepdim=True), (-1, 0))
case("logsumexp_dim", [rand(2, 3, 4)], lambda t: torch.logsumexp(t[0], 1, keepdim=True), (1, 0))
case("logsumexp_dim", [np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0],
                                 [1000.0, 1000.0, 999.0]])],
     lambda t: torch.logsumexp(t[0], -1, keepdim=True), (-1, 0))

# layer norm over the last dim (row 1 of the first case is constant)
ln_x = rand(4, 6)
ln_x[1, :] = 0.75
case("layer_norm", [ln_x, rand(6), rand(6)],
     lambda t: F.layer_norm(t[0], (6,), t[1], t[2], 1e-5), darg=1e-5)
case("layer_norm", [rand(2, 3, 5), None, None],
     lambda t: F.layer_norm(t[0], (5,), None, None, 1e-5), darg=1e-5)
case("layer_norm", [rand(3, 4), rand(4), None],
     lambda t: F.layer_norm(t[0], (4,), t[1], None, 0.1), darg=0.1)
case("layer_norm", [rand(3, 4), None, rand(4)],
     lambda t: F.layer_norm(t[0], (4,), None, t[2], 1e-3), darg=1e-3)
case("layer_norm", [rand(20, 37, lo=-50, hi=50), rand(37), rand(37)],
     lambda t: F.layer_norm(t[0], (37,), t[1], t[2], 1e-5), darg=1e-5)

case("mse_loss", [rand(3, 4), rand(3, 4)], lambda t: F.mse_loss(t[0], t[1]))

# shape
case("stack", [rand(2, 3), rand(2, 3), rand(2, 3)], lambda t: torch.stack(t, 0), (0, 0))
case("stack", [rand(2, 3), rand(2, 3)], lambda t: torch.stack(t, -1), (-1, 0))
case("stack", [rand(2, 3, 2), rand(2, 3, 2)], lambda t: torch.stack(t, 1), (1, 0))
case("chunk", [rand(4, 6)], lambda t: list(torch.chunk(t[0], 3, -1)), (-1, 3))
case("chunk", [rand(4, 2, 3)], lambda t: list(torch.chunk(t[0], 2, 0)), (0, 2))
case("flip", [rand(3, 4)], lambda t: torch.flip(t[0], [0]), (0, 0))
case("flip", [rand(2, 3, 4)], lambda t: torch.flip(t[0], [-2]), (-2, 0))
case("bmm", [rand(2, 3, 4), rand(2, 4, 5)], lambda t: torch.bmm(t[0], t[1]))
case("bmm", [rand(3, 1, 2), rand(3, 2, 1)], lambda t: torch.bmm(t[0], t[1]))

# one_hot (forward only: no gradient)
ONE_HOT = dict(idx=[2, 0, 3, 3, 1], classes=4)
ONE_HOT["out"] = F.one_hot(torch.tensor(ONE_HOT["idx"]), ONE_HOT["classes"]).double().numpy()


def main():
    out = []
    rows = []
    for k, c in enumerate(CASES):
        p = f"opsref_{k}"
        ins, grads, nds, shps = [], [], [], []
        for i, a in enumerate(c["inputs"]):
            if a is None:
                ins.append("NULL"), grads.append("NULL"), nds.append("0")
                shps.append("{ 0 }")
                continue
            out.append(line_array(f"{p}_in{i}", a))
            out.append(line_array(f"{p}_grad{i}", c["grads"][i]))
            ins.append(f"{p}_in{i}"), grads.append(f"{p}_grad{i}")
            nds.append(str(a.ndim)), shps.append(dims(a))
        out.append(line_array(f"{p}_out", c["out"]))
        out.append(line_array(f"{p}_r", c["r"]))
        n = len(c["inputs"])
        head = f"\"{c['op']}\", {{ {c['iarg'][0]}, {c['iarg'][1]} }}, {c['darg']!r}"
        rows.append(f"""    {{ {head}, {int(c['smooth'])}, {n},
      {{ {", ".join(nds)} }}, {{ {", ".join(shps)} }},
      {{ {", ".join(ins)} }}, {{ {", ".join(grads)} }}, {len(c['out'])}, {p}_out, {p}_r }},
""")
    out.append("\nstatic const opsref_case opsref_cases[] = {\n" + "".join(rows) + "};\n")
    out.append(f"\nenum {{ OPSREF_NCASES = {len(CASES)} }};\n")
    idx = ", ".join(str(i) for i in ONE_HOT["idx"])
    out.append(f"\n/* one_hot(idx, {len(ONE_HOT['idx'])}, {ONE_HOT['classes']}) */\n")
    out.append(f"static const int32_t opsref_one_hot_idx[] = {{ {idx} }};\n")
    out.append(f"enum {{ OPSREF_ONE_HOT_N = {len(ONE_HOT['idx'])}, "
               f"OPSREF_ONE_HOT_CLASSES = {ONE_HOT['classes']} }};\n")
    out.append(line_array("opsref_one_hot_out", ONE_HOT["out"]))
    write_header("ops_ref.h", "".join(out))


if __name__ == "__main__":
    main()
