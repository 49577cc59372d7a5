"""PyTorch's training speed for chapter 3's bigram language model, the
lecture's bigram.py as is (batch 32, block 8, AdamW lr 1e-2): steps per
second of the training loop (batch, forward, backward, update), estimates
excluded.

    python3 parity/bench_bigram.py [path/to/tinyshakespeare.txt]

Prints one JSON line: steps per second at 1 and 2 threads (best of 5 runs of
300 steps each).
"""
import json, os, sys, time

import torch
import torch.nn as nn
from torch.nn import functional as F

path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.environ.get("CHARLM_DATA_DIR", "data"), "tinyshakespeare.txt")
text = open(path, encoding="utf-8").read()
chars = sorted(set(text))
stoi = {ch: i for i, ch in enumerate(chars)}
data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
n = int(0.9 * len(data))
train_data = data[:n]
batch_size, block_size = 32, 8
torch.manual_seed(1337)


def get_batch():
    ix = torch.randint(len(train_data) - block_size, (batch_size,))
    x = torch.stack([train_data[i:i + block_size] for i in ix])
    y = torch.stack([train_data[i + 1:i + block_size + 1] for i in ix])
    return x, y


class BigramLanguageModel(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx, targets):
        logits = self.token_embedding_table(idx)
        B, T, C = logits.shape
        return F.cross_entropy(logits.view(B * T, C), targets.view(B * T))


model = BigramLanguageModel(len(chars))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)


def steps_per_second(steps=300):
    t0 = time.perf_counter()
    for _ in range(steps):
        xb, yb = get_batch()
        loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps / (time.perf_counter() - t0)


result = {"torch": torch.__version__}
for threads in (1, 2):
    torch.set_num_threads(threads)
    steps_per_second(50)  # warm up
    result[f"steps_per_s_{threads}_thread"] = round(max(steps_per_second() for _ in range(5)), 1)
print(json.dumps(result))
