#!/usr/bin/python3
# bench/torch_sample.py: generation at batch 1 in PyTorch against bench_sample, interleaved.
#
# The PyTorch side is the loop a user would write: per character torch.nn.LSTM (2 layers,
# one-hot input over 65 symbols) on one step, the linear head, softmax and
# torch.multinomial, under torch.no_grad(), with one torch thread and one OpenBLAS thread.
# The tapegrad side is build/bench/bench_sample (charlm sample's loop, one thread), run as
# a child process. The two alternate, 3 rounds each, so both see the same machine; each
# side reports its best round and the ratio of the two:
#   torch_sample hidden= threads=1 chars_per_s= tapegrad_chars_per_s= ratio=
# TG_BENCH_HIDDEN ("128,512") and TG_BENCH_QUICK=1 work as for bench_sample.
import os
import subprocess
import sys
import time

os.environ["OPENBLAS_NUM_THREADS"] = "1"
import torch  # noqa: E402 (after OPENBLAS_NUM_THREADS is set)

V, LAYERS, ROUNDS = 65, 2, 3
quick = os.environ.get("TG_BENCH_QUICK", "0") == "1"
seconds = 0.2 if quick else 0.5
hiddens = [int(h) for h in os.environ.get("TG_BENCH_HIDDEN", "128,512").split(",")]
here = os.path.dirname(os.path.abspath(sys.argv[0]))
tapegrad = os.path.join(here, "..", os.environ.get("BUILD", "build"), "bench", "bench_sample")

torch.set_num_threads(1)
torch.manual_seed(1)


def torch_round(lstm, head, eye, state, tok, secs):
    """Samples characters for secs seconds; returns (chars/s, state, last token)."""
    n, t0 = 0, time.perf_counter()
    with torch.no_grad():
        while True:
            for _ in range(16):
                out, state = lstm(eye[tok].view(1, 1, V), state)
                probs = torch.softmax(head(out[0, 0]), dim=-1)
                tok = int(torch.multinomial(probs, 1).item())
                n += 1
            t = time.perf_counter() - t0
            if t >= secs:
                return n / t, state, tok


def tapegrad_round(H):
    env = dict(os.environ, TG_BENCH_HIDDEN=str(H), TG_BENCH_THREADS="1",
               TG_BENCH_SAMPLE_SECONDS=str(seconds))
    out = subprocess.run([tapegrad], env=env, capture_output=True, text=True,
                         check=True).stdout
    return float(out.split("chars_per_s=")[1].split()[0])


for H in hiddens:
    lstm = torch.nn.LSTM(V, H, LAYERS, batch_first=True)
    head = torch.nn.Linear(H, V)
    eye = torch.eye(V)
    state = (torch.zeros(LAYERS, 1, H), torch.zeros(LAYERS, 1, H))
    _, state, tok = torch_round(lstm, head, eye, state, 0, seconds / 4)   # warm-up
    best_t, best_g = 0.0, 0.0
    for r in range(ROUNDS):
        best_g = max(best_g, tapegrad_round(H))
        rate, state, tok = torch_round(lstm, head, eye, state, tok, seconds)
        best_t = max(best_t, rate)
    print(f"torch_sample hidden={H} threads=1 chars_per_s={best_t:.0f} "
          f"tapegrad_chars_per_s={best_g:.0f} ratio={best_g / best_t:.2f} "
          f"torch={torch.__version__}", flush=True)
