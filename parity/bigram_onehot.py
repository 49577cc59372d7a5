"""Chapter 2 in PyTorch, as the lecture writes it: the one-hot net on all
228,146 pairs of names.txt, W from the lecture's generator, 100 steps of
gradient descent at learning rate 50 with 0.01 * mean(W**2).

Writes W (the input both sides start from), the loss before each step and
after the last, the first gradient and the final W."""
import torch
import torch.nn.functional as F

from common import data_path, flat, write

words = open(data_path("names.txt")).read().splitlines()
chars = sorted(list(set("".join(words))))
stoi = {s: i + 1 for i, s in enumerate(chars)}
stoi["."] = 0

xs, ys = [], []
for w in words:
    chs = ["."] + list(w) + ["."]
    for ch1, ch2 in zip(chs, chs[1:]):
        xs.append(stoi[ch1])
        ys.append(stoi[ch2])
xs = torch.tensor(xs)
ys = torch.tensor(ys)
num = xs.nelement()

g = torch.Generator().manual_seed(2147483647)
W = torch.randn((27, 27), generator=g, requires_grad=True)
W_init = W.detach().clone()
xenc = F.one_hot(xs, num_classes=27).float()

steps = 100
losses = []
for k in range(steps + 1):
    # forward pass
    logits = xenc @ W  # log-counts
    counts = logits.exp()  # equivalent to N
    probs = counts / counts.sum(1, keepdims=True)
    loss = -probs[torch.arange(num), ys].log().mean() + 0.01 * (W**2).mean()
    losses.append(loss.item())
    if k == steps:
        break  # the loss after the last update
    # backward pass
    W.grad = None
    loss.backward()
    if k == 0:
        first_grad = W.grad.clone()
    # update
    W.data += -50 * W.grad
print(f"loss {losses[0]:.4f} -> {losses[1]:.4f} (1 step) -> {losses[10]:.4f} (10) -> {losses[100]:.4f} (100)")

write("bigram_onehot", {
    "pairs": num,
    "lr": 50.0,
    "reg": 0.01,
    "losses": losses,
    "first_grad": flat(first_grad),
    "final_W": flat(W),
}, inputs={"W": W_init})
