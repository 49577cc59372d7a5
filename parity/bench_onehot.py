"""PyTorch's time for chapter 2's full-batch step, the lecture's code as is:
forward (one-hot @ W, softmax, NLL + 0.01 * mean(W**2)), backward, update.

    python3 parity/bench_onehot.py [path/to/names.txt]

Prints one JSON line: the best time per step (ms) at 1 and 2 threads.
"""
import json, os, sys, time

import torch
import torch.nn.functional as F

path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.environ.get("CHARLM_DATA_DIR", "data"), "names.txt")
words = open(path).read().splitlines()
chars = sorted(set("".join(words)))
stoi = {s: i + 1 for i, s in enumerate(chars)}
stoi["."] = 0
xs, ys = [], []
for w in words:
    chs = ["."] + list(w) + ["."]
    for ch1, ch2 in zip(chs, chs[1:]):
        xs.append(stoi[ch1])
        ys.append(stoi[ch2])
xs, ys = torch.tensor(xs), torch.tensor(ys)
num = xs.nelement()
g = torch.Generator().manual_seed(2147483647)
W = torch.randn((27, 27), generator=g, requires_grad=True)
xenc = F.one_hot(xs, num_classes=27).float()  # made once, outside the step


def step():
    logits = xenc @ W  # log-counts
    counts = logits.exp()  # equivalent to N
    probs = counts / counts.sum(1, keepdims=True)
    loss = -probs[torch.arange(num), ys].log().mean() + 0.01 * (W**2).mean()
    W.grad = None
    loss.backward()
    W.data += -0.1 * W.grad


result = {"torch": torch.__version__, "pairs": num}
for threads in (1, 2):
    torch.set_num_threads(threads)
    for _ in range(5):
        step()
    best = min(
        (lambda t0: (step(), time.perf_counter() - t0)[1])(time.perf_counter())
        for _ in range(30)
    )
    result[f"ms_{threads}_thread"] = round(best * 1e3, 2)
print(json.dumps(result))
