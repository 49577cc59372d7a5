"""Chapter 1 in PyTorch, as the lecture writes it: count the bigrams of
names.txt into N, normalise N + 1 into P, and score P with the average
negative log-likelihood, summed one bigram at a time in float32.

charlm must reproduce N exactly and the loss to the last bit."""
import torch

from common import data_path, flat, write

words = open(data_path("names.txt")).read().splitlines()
chars = sorted(list(set("".join(words))))
stoi = {s: i + 1 for i, s in enumerate(chars)}
stoi["."] = 0

N = torch.zeros((27, 27), dtype=torch.int32)
for w in words:
    chs = ["."] + list(w) + ["."]
    for ch1, ch2 in zip(chs, chs[1:]):
        N[stoi[ch1], stoi[ch2]] += 1

P = (N + 1).float()
P /= P.sum(1, keepdims=True)

log_likelihood = 0.0
n = 0
for w in words:
    chs = ["."] + list(w) + ["."]
    for ch1, ch2 in zip(chs, chs[1:]):
        prob = P[stoi[ch1], stoi[ch2]]
        logprob = torch.log(prob)
        log_likelihood += logprob
        n += 1
nll = -log_likelihood
print(f"{log_likelihood=}\n{nll=}\n{nll/n}")

write("bigram_counts", {
    "words": len(words),
    "bigrams": n,
    "N": flat(N),
    "log_likelihood": log_likelihood.item(),
    "nll": (nll / n).item(),
})
