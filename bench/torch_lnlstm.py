#!/usr/bin/python3
# bench/torch_lnlstm.py: the layer-normalised LSTM written with torch ops, in eager mode.
#
# The cell as PyTorch's fastrnns benchmark writes its LayerNormLSTMCell: the 4H gate
# pre-activations of the input product and of the recurrent product are layer normalised
# separately (their shifts are the only biases), the sum is cut into i, f, g, o, and the
# new cell state is layer normalised too. Two such layers step by step in a Python loop
# over 50 steps (batch 50, one-hot input over 65 symbols), a linear head, cross-entropy,
# backward, clip_grad_norm_(5), RMSprop (lr 2e-3): bench_cells' step. One torch thread and
# TG_BENCH_THREADS OpenBLAS threads (default 2: the fastest layout in torch_charlm.py).
# It alternates with build/bench/bench_cells (TG_BENCH_CELLS=lnlstm, a child process) for
# 3 rounds, and prints both sides' best round and the ratio:
#   torch_lnlstm hidden= threads= ms_per_step= tapegrad_ms_per_step= ratio= (torch / tapegrad)
# TG_BENCH_HIDDEN ("128") and TG_BENCH_QUICK=1 work as for bench_cells.
import os
import statistics
import subprocess
import sys
import time

threads = os.environ.get("TG_BENCH_THREADS", "2")
os.environ["OPENBLAS_NUM_THREADS"] = threads
import torch  # noqa: E402 (after OPENBLAS_NUM_THREADS is set)

B, T, V, LAYERS, ROUNDS = 50, 50, 65, 2, 3
quick = os.environ.get("TG_BENCH_QUICK", "0") == "1"
hiddens = [int(h) for h in os.environ.get("TG_BENCH_HIDDEN", "128").split(",")]
here = os.path.dirname(os.path.abspath(sys.argv[0]))
tapegrad = os.path.join(here, "..", os.environ.get("BUILD", "build"), "bench", "bench_cells")

torch.set_num_threads(1)
torch.manual_seed(1)


class LayerNormLSTMCell(torch.nn.Module):
    def __init__(self, n_in, n_hidden):
        super().__init__()
        self.w_ih = torch.nn.Parameter(torch.empty(4 * n_hidden, n_in).uniform_(-0.08, 0.08))
        self.w_hh = torch.nn.Parameter(
            torch.empty(4 * n_hidden, n_hidden).uniform_(-0.08, 0.08))
        self.ln_ih = torch.nn.LayerNorm(4 * n_hidden)
        self.ln_hh = torch.nn.LayerNorm(4 * n_hidden)
        self.ln_cell = torch.nn.LayerNorm(n_hidden)

    def forward(self, x, state):
        h, c = state
        gates = self.ln_ih(torch.mm(x, self.w_ih.t())) + self.ln_hh(torch.mm(h, self.w_hh.t()))
        i, f, g, o = gates.chunk(4, 1)
        c = self.ln_cell(torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g))
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


def torch_round(cells, head, params, opt, eye, H, steps):
    """Median ms of `steps` training steps."""
    times = []
    for _ in range(steps):
        inputs = torch.randint(0, V, (T, B))
        targets = torch.randint(0, V, (T, B))
        t0 = time.perf_counter()
        state = [(torch.zeros(B, H), torch.zeros(B, H)) for _ in cells]
        logits = []
        for t in range(T):
            x = eye[inputs[t]]
            for layer, cell in enumerate(cells):
                state[layer] = cell(x, state[layer])
                x = state[layer][0]
            logits.append(head(x))
        loss = torch.nn.functional.cross_entropy(torch.cat(logits), targets.reshape(T * B))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def tapegrad_round(H):
    env = dict(os.environ, TG_BENCH_HIDDEN=str(H), TG_BENCH_CELLS="lnlstm",
               TG_BENCH_QUICK="1", TG_BENCH_THREADS=threads)
    out = subprocess.run([tapegrad], env=env, capture_output=True, text=True,
                         check=True).stdout
    return float(out.split("ms_per_step=")[1].split()[0])


for H in hiddens:
    cells = [LayerNormLSTMCell(V if layer == 0 else H, H) for layer in range(LAYERS)]
    head = torch.nn.Linear(H, V)
    params = [p for m in cells + [head] for p in m.parameters()]
    opt = torch.optim.RMSprop(params, lr=2e-3)
    eye = torch.eye(V)
    steps = 2 if quick else 4
    torch_round(cells, head, params, opt, eye, H, 1)   # warm-up
    best_t, best_g = float("inf"), float("inf")
    for r in range(ROUNDS):
        best_g = min(best_g, tapegrad_round(H))
        best_t = min(best_t, torch_round(cells, head, params, opt, eye, H, steps))
    print(f"torch_lnlstm hidden={H} threads={threads} ms_per_step={best_t:.2f} "
          f"tapegrad_ms_per_step={best_g:.2f} ratio={best_t / best_g:.2f} "
          f"torch_threads=1 openblas_threads={threads} torch={torch.__version__}", flush=True)
