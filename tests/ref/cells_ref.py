#!/usr/bin/python3
"""tests/ref/cells_ref.py: reference values for tests/test_zoo.c, computed in torch.

Writes tests/ref/cells_ref.h (run from anywhere: /usr/bin/python3 tests/ref/cells_ref.py).
Run once; the header is committed and the tests never need torch or Python.
Where OpenBLAS picks other kernels (as on an AVX-512 machine) the gradients differ from
the committed ones in their last bits: OPENBLAS_CORETYPE=Sandybridge reproduces them.

Everything is float64. Parameters are drawn with numpy in tapegrad's layout and names (as
each cell type's init lays them out under the prefix "cell"; see nn/nn.h) and written
into the header, then computed with torch:
  * torchgru through torch.nn.GRU itself (our ih.w is its weight_ih_l0 transposed, ...),
  * lnlstm with the formulas of PyTorch's fastrnns LayerNormLSTMCell (F.layer_norm over
    the 4H pre-activations of x @ W_ih and of h @ W_hh separately, and over the new c),
  * peephole, mgu and indrnn with their papers' equations in torch ops.
Gradients come from torch's autograd, so they are in tapegrad's layout.

Cell cases: B=2, I=3, H=4, T=5 steps from a random initial state; loss = sum_t sum(h_t*r_t)
with fixed random r_t. Bidirectional cases: torch.nn.GRU / torch.nn.LSTM with
bidirectional=True and num_layers=2 from a zero state, loss = sum_t sum(out_t * r_t) over
the (T,B,2H) output, parameters mapped to tapegrad's "torchgru" and "lstm" cells under
"bi.<layer>.fwd" / "bi.<layer>.bwd".
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refgen import block_array, wrap, write_header  # noqa: E402

torch.set_default_dtype(torch.float64)
rng = np.random.RandomState(20261204)


def uniform(shape, lo, hi):
    return torch.tensor(rng.uniform(lo, hi, size=shape), requires_grad=True)


# ---- the cells' equations -------------------------------------------------------------
def lnlstm(p, x, state, H):
    h, c = state
    ln = lambda v, n: F.layer_norm(v, (v.shape[1],), p["cell.%s.gamma" % n],
                                   p["cell.%s.beta" % n], 1e-5)
    gates = ln(x @ p["cell.ih.w"], "ln_ih") + ln(h @ p["cell.hh.w"], "ln_hh")
    i, f, g, o = gates.chunk(4, 1)
    c = ln(torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g), "ln_cell")
    return torch.sigmoid(o) * torch.tanh(c), (torch.sigmoid(o) * torch.tanh(c), c)


def peephole(p, x, state, H):
    h, c = state
    pre = torch.cat([h, x], 1) @ p["cell.gates.w"] + p["cell.gates.b"]
    a_i, a_f, a_g, a_o = pre.chunk(4, 1)
    i = torch.sigmoid(a_i + p["cell.peep_input"] * c)
    f = torch.sigmoid(a_f + p["cell.peep_forget"] * c)
    c = f * c + i * torch.tanh(a_g)
    o = torch.sigmoid(a_o + p["cell.peep_output"] * c)
    h = o * torch.tanh(c)
    return h, (h, c)


def mgu(p, x, state, H):
    (h,) = state
    f = torch.sigmoid(torch.cat([h, x], 1) @ p["cell.forget.w"] + p["cell.forget.b"])
    cand = torch.tanh(torch.cat([f * h, x], 1) @ p["cell.candidate.w"] + p["cell.candidate.b"])
    h = (1 - f) * h + f * cand
    return h, (h,)


def indrnn(p, x, state, H):
    (h,) = state
    h = torch.relu(x @ p["cell.input.w"] + p["cell.input.b"] + p["cell.u"] * h)
    return h, (h,)


def gru_module(I, H, layers, bidir, p, prefix):
    """A torch.nn.GRU holding our torchgru parameters (prefix.<l>.<dir> or prefix)."""
    mod = torch.nn.GRU(I, H, num_layers=layers, bidirectional=bidir)
    with torch.no_grad():
        for name, t in torch_gru_names(layers, bidir, prefix).items():
            getattr(mod, name).copy_(p[t[0]].t() if t[1] else p[t[0]])
    return mod


def torch_gru_names(layers, bidir, prefix):
    """torch parameter name -> (our name, transposed)."""
    out = {}
    for l in range(layers):
        for d, sfx in enumerate(["", "_reverse"][: 2 if bidir else 1]):
            ours = "%s.%d.%s" % (prefix, l, ("fwd", "bwd")[d]) if bidir else prefix
            for kind in ("ih", "hh"):
                out["weight_%s_l%d%s" % (kind, l, sfx)] = ("%s.%s.w" % (ours, kind), True)
                out["bias_%s_l%d%s" % (kind, l, sfx)] = ("%s.%s.b" % (ours, kind), False)
    return out


def pull_grads(mod, names, p):
    """Our parameters' gradients from the module's (mapped back through the layout)."""
    for tname, (ours, tr) in names.items():
        g = getattr(mod, tname).grad
        p[ours].grad = (g.t() if tr else g).clone()


# ---- the cases -----------------------------------------------------------------------
def cell_params(kind, I, H):
    """Our parameters in init's order: name -> leaf tensor."""
    W = lambda r, c: uniform((r, c), -0.6, 0.6)
    V = lambda n: uniform((n,), -0.6, 0.6)
    G = lambda n: uniform((n,), 0.5, 1.5)
    if kind == "lnlstm":
        return {"cell.ih.w": W(I, 4 * H), "cell.hh.w": W(H, 4 * H),
                "cell.ln_ih.gamma": G(4 * H), "cell.ln_ih.beta": V(4 * H),
                "cell.ln_hh.gamma": G(4 * H), "cell.ln_hh.beta": V(4 * H),
                "cell.ln_cell.gamma": G(H), "cell.ln_cell.beta": V(H)}
    if kind == "peephole":
        return {"cell.gates.w": W(H + I, 4 * H), "cell.gates.b": V(4 * H),
                "cell.peep_input": V(H), "cell.peep_forget": V(H), "cell.peep_output": V(H)}
    if kind == "torchgru":
        return {"cell.ih.w": W(I, 3 * H), "cell.ih.b": V(3 * H),
                "cell.hh.w": W(H, 3 * H), "cell.hh.b": V(3 * H)}
    if kind == "mgu":
        return {"cell.forget.w": W(H + I, H), "cell.forget.b": V(H),
                "cell.candidate.w": W(H + I, H), "cell.candidate.b": V(H)}
    if kind == "indrnn":
        return {"cell.input.w": W(I, H), "cell.input.b": V(H),
                "cell.u": uniform((H,), 0.0, 1.0)}
    raise ValueError(kind)


NSTATE = {"lnlstm": 2, "peephole": 2, "torchgru": 1, "mgu": 1, "indrnn": 1}
STEP = {"lnlstm": lnlstm, "peephole": peephole, "mgu": mgu, "indrnn": indrnn}


def cell_case(kind, B=2, I=3, H=4, T=5):
    p = cell_params(kind, I, H)
    x = uniform((T, B, I), -1.0, 1.0)
    s0 = uniform((NSTATE[kind], B, H), -0.5, 0.5)
    r = torch.tensor(rng.uniform(-1, 1, size=(T, B, H)))
    if kind == "torchgru":
        names = torch_gru_names(1, False, "cell")
        mod = gru_module(I, H, 1, False, p, "cell")
        out, _ = mod(x, s0)                                        # (T,B,H)
        hs = list(out.unbind(0))
    else:
        state, hs = tuple(s0.unbind(0)), []
        for t in range(T):
            h, state = STEP[kind](p, x[t], state, H)
            hs.append(h)
    loss = sum((hs[t] * r[t]).sum() for t in range(T))
    loss.backward()
    if kind == "torchgru":
        pull_grads(mod, names, p)
    return dict(kind=kind, B=B, I=I, H=H, T=T, p=p, x=x, s0=s0, r=r, h=torch.stack(hs),
                loss=loss)


def lstm_torch_names(layers):
    """torch.nn.LSTM(bidirectional) parameter -> our lstm gates' names, in torch's order."""
    out = {}
    for l in range(layers):
        for d, sfx in enumerate(["", "_reverse"]):
            ours = "bi.%d.%s" % (l, ("fwd", "bwd")[d])
            out[(l, sfx)] = ["%s.%s" % (ours, g) for g in ("input", "forget", "candidate",
                                                           "output")]
    return out


def bidir_case(kind, B=2, I=3, H=4, T=5, layers=2):
    """torch.nn.GRU/LSTM(bidirectional=True, num_layers=2) against our cells."""
    p = {}
    for l in range(layers):
        n_in = I if l == 0 else 2 * H
        for d in ("fwd", "bwd"):
            pre = "bi.%d.%s" % (l, d)
            if kind == "torchgru":
                p.update({pre + ".ih.w": uniform((n_in, 3 * H), -0.6, 0.6),
                          pre + ".ih.b": uniform((3 * H,), -0.6, 0.6),
                          pre + ".hh.w": uniform((H, 3 * H), -0.6, 0.6),
                          pre + ".hh.b": uniform((3 * H,), -0.6, 0.6)})
            else:                       # lstm: the guide's gates over concat(h, x)
                for g in ("forget", "candidate", "input", "output"):
                    p[pre + "." + g + ".w"] = uniform((H + n_in, H), -0.6, 0.6)
                    p[pre + "." + g + ".b"] = uniform((H,), -0.6, 0.6)
    x = uniform((T, B, I), -1.0, 1.0)
    r = torch.tensor(rng.uniform(-1, 1, size=(T, B, 2 * H)))
    if kind == "torchgru":
        names = torch_gru_names(layers, True, "bi")
        mod = gru_module(I, H, layers, True, p, "bi")
    else:
        mod = torch.nn.LSTM(I, H, num_layers=layers, bidirectional=True)
        with torch.no_grad():
            for (l, sfx), gates in lstm_torch_names(layers).items():
                getattr(mod, "weight_ih_l%d%s" % (l, sfx)).copy_(
                    torch.cat([p[g + ".w"][H:].t() for g in gates], 0))
                getattr(mod, "weight_hh_l%d%s" % (l, sfx)).copy_(
                    torch.cat([p[g + ".w"][:H].t() for g in gates], 0))
                getattr(mod, "bias_ih_l%d%s" % (l, sfx)).copy_(
                    torch.cat([p[g + ".b"] for g in gates], 0))
                getattr(mod, "bias_hh_l%d%s" % (l, sfx)).zero_()
    out, _ = mod(x)                                                  # (T,B,2H)
    loss = (out * r).sum()
    loss.backward()
    if kind == "torchgru":
        pull_grads(mod, names, p)
    else:
        for (l, sfx), gates in lstm_torch_names(layers).items():
            gih = getattr(mod, "weight_ih_l%d%s" % (l, sfx)).grad.chunk(4, 0)
            ghh = getattr(mod, "weight_hh_l%d%s" % (l, sfx)).grad.chunk(4, 0)
            gb = getattr(mod, "bias_ih_l%d%s" % (l, sfx)).grad.chunk(4, 0)
            for k, g in enumerate(gates):
                p[g + ".w"].grad = torch.cat([ghh[k].t(), gih[k].t()], 0)
                p[g + ".b"].grad = gb[k].clone()
    return dict(kind=kind, B=B, I=I, H=H, T=T, layers=layers, p=p, x=x, r=r, out=out,
                loss=loss)


# ---- the header ----------------------------------------------------------------------
def params_table(out, pre, p):
    rows = []
    for name, t in p.items():
        cname = pre + "_" + name.replace(".", "_")
        v, g = block_array(out, cname, t), block_array(out, cname + "_grad", t.grad)
        shape = list(t.shape) + [1] * (2 - t.dim())
        rows.append('    { "%s", %d, { %d, %d },\n%s },' % (name, t.dim(), shape[0], shape[1],
                                                           wrap([v, g], "      ")))
    out.append("static const cellref_param %s_params[%d] = {\n%s\n};"
               % (pre, len(rows), "\n".join(rows)))
    return pre + "_params"


def main():
    torch.manual_seed(0)
    out = []
    rows = []
    for kind in ("lnlstm", "peephole", "torchgru", "mgu", "indrnn"):
        cs = cell_case(kind)
        pre = "cellref_" + kind
        params = params_table(out, pre, cs["p"])
        names = [block_array(out, pre + "_" + k, cs[k]) for k in ("x", "s0", "r", "h")]
        names += [block_array(out, pre + "_dx", cs["x"].grad),
                  block_array(out, pre + "_ds0", cs["s0"].grad)]
        rows.append('    { "%s", %d, %d, %d, %d, %d, %d, %s,\n%s,\n      %r },'
                    % (kind, cs["B"], cs["I"], cs["H"], cs["T"], NSTATE[kind], len(cs["p"]),
                       params, wrap(names, "      "), float(cs["loss"])))
    out.append("static const cellref_case cellref_cases[%d] = {\n%s\n};\n"
               % (len(rows), "\n".join(rows)))
    rows = []
    for kind in ("torchgru", "lstm"):
        bc = bidir_case(kind)
        pre = "cellref_bidir_" + kind
        params = params_table(out, pre, bc["p"])
        names = [block_array(out, pre + "_" + k, bc[k]) for k in ("x", "r", "out")]
        names.append(block_array(out, pre + "_dx", bc["x"].grad))
        rows.append('    { "%s", %d, %d, %d, %d, %d, %d, %s,\n%s,\n      %r },'
                    % (kind, bc["B"], bc["I"], bc["H"], bc["T"], bc["layers"], len(bc["p"]),
                       params, wrap(names, "      "), float(bc["loss"])))
    out.append("static const cellref_bidir cellref_bidirs[%d] = {\n%s\n};\n"
               % (len(rows), "\n".join(rows)))
    write_header("cells_ref.h", "\n".join(out))


if __name__ == "__main__":
    main()
