#!/usr/bin/python3
# tests/ref/charlm_torch_ref.py: the charlm protocol (split, char-rnn batches, carried
# state, RMSprop, clipping, zero-state validation chunks) with torch.nn.LSTM, to compare
# validation losses with 'charlm train'. Reference only: nothing in the build needs torch.
#
#   /usr/bin/python3 tests/ref/charlm_torch_ref.py [--steps 2000] [--no-carry] [--seed 1]
#
# Prints "step N: val_loss X" at every --eval-every and a final line like charlm's.
import argparse
import math
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--data", default="examples/data/tinyshakespeare.txt")
p.add_argument("--steps", type=int, default=2000)
p.add_argument("--eval-every", type=int, default=500)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--no-carry", action="store_true", help="zero state at every window")
a = p.parse_args()
torch.manual_seed(a.seed)
torch.set_num_threads(a.threads)

B, T, H, L = 50, 50, 128, 2
text = open(a.data, "rb").read().decode("utf-8", "replace")
vocab = sorted(set(text))
V = len(vocab)
idx = {c: i for i, c in enumerate(vocab)}
ids = torch.tensor([idx[c] for c in text], dtype=torch.long)
nval = int(len(ids) * 0.1)
train, val = ids[: len(ids) - nval], ids[len(ids) - nval:]
S = len(train) // B                      # stream length, as charlm's batcher
W = (S - 1) // T                         # windows per epoch
streams = train[: B * S].view(B, S)


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(V, H, L, batch_first=True)
        self.head = torch.nn.Linear(H, V)

    def forward(self, x, state):
        y, state = self.lstm(torch.nn.functional.one_hot(x, V).float(), state)
        return self.head(y), state


m = Model()
opt = torch.optim.RMSprop(m.parameters(), lr=2e-3, alpha=0.95)


def validate():
    chunks = (len(val) - 1) // T
    x = val[: chunks * T].view(chunks, T)
    y = val[1: chunks * T + 1].view(chunks, T)
    total = 0.0
    with torch.no_grad():
        for i in range(0, chunks, 128):
            logits, _ = m(x[i:i + 128], None)
            total += torch.nn.functional.cross_entropy(
                logits.reshape(-1, V), y[i:i + 128].reshape(-1), reduction="sum").item()
    return total / (chunks * T)


state = None
cursor = 0
t0 = time.time()
val_loss = float("nan")
for step in range(1, a.steps + 1):
    x = streams[:, cursor * T: cursor * T + T]
    y = streams[:, cursor * T + 1: cursor * T + T + 1]
    if a.no_carry:
        state = None
    logits, state = m(x, state)
    state = tuple(s.detach() for s in state)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 5.0)
    opt.step()
    cursor += 1
    if cursor == W:
        cursor, state = 0, None
    if step % a.eval_every == 0 or step == a.steps:
        val_loss = validate()
        print(f"step {step}: loss {loss.item():.4f} val_loss {val_loss:.4f} "
              f"({time.time() - t0:.0f} s)", flush=True)
print(f"torch: steps={a.steps} val_loss={val_loss:.6f} bpc={val_loss / math.log(2):.6f}")
