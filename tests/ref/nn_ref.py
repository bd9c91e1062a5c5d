#!/usr/bin/python3
"""tests/ref/nn_ref.py: reference values for tests/test_nn.c, computed independently in torch.

Writes tests/ref/nn_ref.h (run from the repository root: /usr/bin/python3 tests/ref/nn_ref.py).
Run once; the header is committed and the tests never need torch or Python.

Everything is float64. Weights are drawn with numpy in tapegrad's layout (every gate's w is
(H+I, H): the first H rows multiply the previous h, the next I rows multiply x; b is (H)) and
written into the header, then mapped onto torch's own layout:
  * RNN and LSTM cells and stacks run through torch.nn.RNNCell / LSTMCell / RNN / LSTM
    (an implementation that shares no code with tapegrad; torch's second bias is zero),
  * the classic GRU (reset gate applied to h before the candidate's matmul) is not what
    torch.nn.GRU computes, so it is written out with torch ops from the equations in
    the GRU section of nn/gru.c (the illustrated guide's classic form).
Gradients come from torch's autograd through that mapping, so they are in tapegrad's layout.

Cell cases: B=2, I=3, H=4, T=6 steps from a random h0 (and c0); loss = sum_t sum(h_t * r_t)
with fixed random r_t. Char-LM cases: 2 layers, zero initial state, mean cross-entropy over
all B*T positions (targets time-major), as tg_charlm_loss computes it.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils import stateless

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refgen import block_array, wrap, write_header  # noqa: E402

torch.set_default_dtype(torch.float64)
rng = np.random.RandomState(20261127)

GATES = {"rnn": ["layer"], "lstm": ["forget", "candidate", "input", "output"],
         "gru": ["update", "reset", "candidate"]}
# torch's gate blocks in weight_ih / weight_hh, in our names
TORCH_ORDER = {"rnn": ["layer"], "lstm": ["input", "forget", "candidate", "output"]}


def uniform(shape, bound):
    return torch.tensor(rng.uniform(-bound, bound, size=shape), requires_grad=True)


def torch_weights(kind, w, b, H):
    """Our per-gate (H+I,H) w and (H) b -> torch's weight_ih, weight_hh, bias_ih, bias_hh."""
    names = TORCH_ORDER[kind]
    w_ih = torch.cat([w[g][H:].t() for g in names], 0)
    w_hh = torch.cat([w[g][:H].t() for g in names], 0)
    b_ih = torch.cat([b[g] for g in names], 0)
    return w_ih, w_hh, b_ih, torch.zeros_like(b_ih)


def gru_classic(w, b, x, h):
    combine = torch.cat([h, x], 1)
    z = torch.sigmoid(combine @ w["update"] + b["update"])
    r = torch.sigmoid(combine @ w["reset"] + b["reset"])
    cand = torch.tanh(torch.cat([r * h, x], 1) @ w["candidate"] + b["candidate"])
    return (1 - z) * h + z * cand


def cell_case(kind, B=2, I=3, H=4, T=6):
    w = {g: uniform((H + I, H), 0.6) for g in GATES[kind]}
    b = {g: uniform((H,), 0.6) for g in GATES[kind]}
    x = uniform((T, B, I), 1.0)
    h0 = uniform((B, H), 0.5)
    c0 = uniform((B, H), 0.5) if kind == "lstm" else None
    r = torch.tensor(rng.uniform(-1, 1, size=(T, B, H)))
    hs, cs = [], []
    if kind == "rnn":
        mod = torch.nn.RNNCell(I, H, nonlinearity="tanh")
    elif kind == "lstm":
        mod = torch.nn.LSTMCell(I, H)
    if kind in ("rnn", "lstm"):
        w_ih, w_hh, b_ih, b_hh = torch_weights(kind, w, b, H)
        p = {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh}
    h, c = h0, c0
    for t in range(T):
        if kind == "rnn":
            h = stateless.functional_call(mod, p, (x[t], h))
        elif kind == "lstm":
            h, c = stateless.functional_call(mod, p, (x[t], (h, c)))
            cs.append(c)
        else:
            h = gru_classic(w, b, x[t], h)
        hs.append(h)
    loss = sum((hs[t] * r[t]).sum() for t in range(T))
    loss.backward()
    return dict(kind=kind, B=B, I=I, H=H, T=T, w=w, b=b, x=x, h0=h0, c0=c0, r=r,
                h=torch.stack(hs), c=torch.stack(cs) if cs else None, loss=loss)


def charlm_case(kind, V, H, E, B, T, layers=2):
    """Params in tg_charlm_init's order and names; returns the case dict."""
    params = []                                   # (name, leaf tensor)
    emb = None
    if E > 0:
        emb = uniform((V, E), 1.0)
        params.append(("embed", emb))
    I = E if E > 0 else V
    w, b = [], []
    for l in range(layers):
        n_in = I if l == 0 else H
        wl, bl = {}, {}
        for g in GATES[kind]:
            wl[g] = uniform((H + n_in, H), 0.6)
            bl[g] = uniform((H,), 0.6)
            params += [("rnn.%d.%s.w" % (l, g), wl[g]), ("rnn.%d.%s.b" % (l, g), bl[g])]
        w.append(wl)
        b.append(bl)
    hw, hb = uniform((H, V), 0.6), uniform((V,), 0.6)
    params += [("head.w", hw), ("head.b", hb)]
    inputs = rng.randint(0, V, size=(B, T))
    targets = rng.randint(0, V, size=(B, T))

    idx = torch.tensor(inputs.T.copy())                              # (T,B) time-major
    xs = F.embedding(idx, emb) if emb is not None else F.one_hot(idx, V).double()
    if kind in ("rnn", "lstm"):
        mod = (torch.nn.RNN(I, H, num_layers=layers) if kind == "rnn"
               else torch.nn.LSTM(I, H, num_layers=layers))
        # nn.RNN/LSTM keep a flat copy of their weights that functional_call does not
        # swap, so load our values into the module and pull its gradients back through
        # the mapping after backward.
        mapped = {}
        for l in range(layers):
            w_ih, w_hh, b_ih, b_hh = torch_weights(kind, w[l], b[l], H)
            mapped.update({"weight_ih_l%d" % l: w_ih, "weight_hh_l%d" % l: w_hh,
                           "bias_ih_l%d" % l: b_ih, "bias_hh_l%d" % l: b_hh})
        with torch.no_grad():
            for name, t in mapped.items():
                getattr(mod, name).copy_(t)
        out, state = mod(xs)                                          # out (T,B,H)
        if kind == "lstm":
            h_n, c_n = state
        else:
            h_n, c_n = state, None
    else:
        hl = [torch.zeros(B, H) for _ in range(layers)]
        outs = []
        for t in range(T):
            inp = xs[t]
            for l in range(layers):
                hl[l] = gru_classic(w[l], b[l], inp, hl[l])
                inp = hl[l]
            outs.append(inp)
        out, h_n, c_n = torch.stack(outs), torch.stack(hl), None
    logits = out.reshape(T * B, H) @ hw + hb
    loss = F.cross_entropy(logits, torch.tensor(targets.T.reshape(-1)))
    loss.backward()
    if kind in ("rnn", "lstm"):
        names = [n for n in mapped if not n.startswith("bias_hh")]   # bias_hh: zeros
        torch.autograd.backward([mapped[n] for n in names],
                                [getattr(mod, n).grad for n in names])
    return dict(kind=kind, V=V, H=H, E=E, B=B, T=T, layers=layers, params=params,
                inputs=inputs, targets=targets, loss=loss, h_n=h_n, c_n=c_n)


def numpy_check(cs):
    """Recomputes a cell case's forward pass in plain numpy from the equations (a check
    that the torch mapping above is right): must agree to 1e-12."""
    sig = lambda v: 1 / (1 + np.exp(-v))
    W = {g: t.detach().numpy() for g, t in cs["w"].items()}
    Bv = {g: t.detach().numpy() for g, t in cs["b"].items()}
    lin = lambda g, v: v @ W[g] + Bv[g]
    h = cs["h0"].detach().numpy()
    c = cs["c0"].detach().numpy() if cs["c0"] is not None else None
    for t in range(cs["T"]):
        x = cs["x"][t].detach().numpy()
        comb = np.concatenate([h, x], 1)
        if cs["kind"] == "rnn":
            h = np.tanh(lin("layer", comb))
        elif cs["kind"] == "lstm":
            c = c * sig(lin("forget", comb)) + np.tanh(lin("candidate", comb)) * sig(
                lin("input", comb))
            h = sig(lin("output", comb)) * np.tanh(c)
            assert np.abs(c - cs["c"][t].detach().numpy()).max() < 1e-12
        else:
            z, r = sig(lin("update", comb)), sig(lin("reset", comb))
            cand = np.tanh(lin("candidate", np.concatenate([r * h, x], 1)))
            h = (1 - z) * h + z * cand
        assert np.abs(h - cs["h"][t].detach().numpy()).max() < 1e-12, cs["kind"]


def main():
    torch.manual_seed(0)
    cells = [cell_case(k) for k in ("rnn", "lstm", "gru")]
    for cs in cells:
        numpy_check(cs)
    lms = [charlm_case("rnn", V=5, H=4, E=0, B=2, T=5),
           charlm_case("lstm", V=5, H=4, E=0, B=2, T=5),
           charlm_case("gru", V=6, H=4, E=3, B=3, T=4)]
    out = []
    entries = []
    for cs in cells:
        k = cs["kind"]
        ws, bs, dws, dbs = [], [], [], []
        for g in GATES[k]:
            ws.append(block_array(out, "nnref_%s_%s_w" % (k, g), cs["w"][g]))
            bs.append(block_array(out, "nnref_%s_%s_b" % (k, g), cs["b"][g]))
            dws.append(block_array(out, "nnref_%s_%s_dw" % (k, g), cs["w"][g].grad))
            dbs.append(block_array(out, "nnref_%s_%s_db" % (k, g), cs["b"][g].grad))
        x = block_array(out, "nnref_%s_x" % k, cs["x"])
        h0 = block_array(out, "nnref_%s_h0" % k, cs["h0"])
        r = block_array(out, "nnref_%s_r" % k, cs["r"])
        h = block_array(out, "nnref_%s_h" % k, cs["h"])
        dx = block_array(out, "nnref_%s_dx" % k, cs["x"].grad)
        dh0 = block_array(out, "nnref_%s_dh0" % k, cs["h0"].grad)
        c0 = c = dc0 = "NULL"
        if cs["c0"] is not None:
            c0 = block_array(out, "nnref_%s_c0" % k, cs["c0"])
            c = block_array(out, "nnref_%s_c" % k, cs["c"])
            dc0 = block_array(out, "nnref_%s_dc0" % k, cs["c0"].grad)
        pad = lambda xs: ", ".join(xs + ["NULL"] * (4 - len(xs)))
        gates = ", ".join('"%s"' % g for g in GATES[k])
        entries.append(
            '    { "%s", %d, %d, %d, %d, %d,\n      { %s },\n      { %s },\n      { %s },\n'
            '      { %s },\n      { %s },\n%s,\n      %r },'
            % (k, cs["B"], cs["I"], cs["H"], cs["T"], len(GATES[k]), gates, pad(ws), pad(bs),
               pad(dws), pad(dbs), wrap([x, h0, c0, r, h, c, dx, dh0, dc0], "      "),
               float(cs["loss"])))
    out.append("static const nnref_cell nnref_cells[3] = {\n%s\n};\n" % "\n".join(entries))

    entries = []
    for i, lm in enumerate(lms):
        pre = "nnref_lm%d" % i
        plist = []
        for name, t in lm["params"]:
            cname = pre + "_" + name.replace(".", "_")
            v = block_array(out, cname, t)
            gr = block_array(out, cname + "_grad", t.grad)
            plist.append('    { "%s", %d, %s, %s },' % (name, t.numel(), v, gr))
        out.append("static const nnref_param %s_params[%d] = {\n%s\n};"
                   % (pre, len(plist), "\n".join(plist)))
        inp = block_array(out, pre + "_inputs", lm["inputs"], "int32_t")
        tgt = block_array(out, pre + "_targets", lm["targets"], "int32_t")
        h_n = block_array(out, pre + "_h_n", lm["h_n"])
        c_n = block_array(out, pre + "_c_n", lm["c_n"]) if lm["c_n"] is not None else "NULL"
        entries.append('    { "%s", %d, %d, %d, %d, %d, %d, %d,\n%s },'
                       % (lm["kind"], lm["V"], lm["H"], lm["E"], lm["layers"], lm["B"],
                          lm["T"], len(plist),
                          wrap([inp, tgt, pre + "_params", h_n, c_n, repr(float(lm["loss"]))],
                               "      ")))
    out.append("static const nnref_charlm nnref_charlms[%d] = {\n%s\n};\n"
               % (len(entries), "\n".join(entries)))
    write_header("nn_ref.h", "\n".join(out))


if __name__ == "__main__":
    main()
