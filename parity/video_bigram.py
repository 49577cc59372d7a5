"""Chapter 3 in PyTorch: the video's notebook (gpt_dev.ipynb) from the top
through its first training, cell by cell: torch.manual_seed(1337), a batch
of 4 blocks of 8, torch.manual_seed(1337) again, the bigram model, its loss
and 100 untrained characters, then AdamW at 1e-3 on batches of 32 for
STEPS steps (the notebook's cell says 100), the last batch's loss and 500
characters.

    CHARLM_DATA_DIR=/path/to/data python3 parity/video_bigram.py [STEPS]

It writes no reference file: it prints what the notebook prints, which
charlm's `stages::bigram::video_training` replays on torch's generator
(tests/book/torch_rng.rs holds both numbers: the notebook's saved output
for 100 steps, 4.65630578994751, and this script's for 10000,
2.382369041442871, with PyTorch 2.15 on a CPU)."""
import sys

import torch
import torch.nn as nn
from torch.nn import functional as F

from common import data_path

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 100

text = open(data_path("tinyshakespeare.txt"), encoding="utf-8").read()
chars = sorted(list(set(text)))
vocab_size = len(chars)
stoi = {ch: i for i, ch in enumerate(chars)}
itos = {i: ch for i, ch in enumerate(chars)}
decode = lambda l: "".join([itos[i] for i in l])
data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
n = int(0.9 * len(data))
train_data = data[:n]
val_data = data[n:]

torch.manual_seed(1337)
batch_size = 4
block_size = 8


def get_batch(split):
    data = train_data if split == "train" else val_data
    ix = torch.randint(len(data) - block_size, (batch_size,))
    x = torch.stack([data[i : i + block_size] for i in ix])
    y = torch.stack([data[i + 1 : i + block_size + 1] for i in ix])
    return x, y


xb, yb = get_batch("train")

torch.manual_seed(1337)


class BigramLanguageModel(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx, targets=None):
        logits = self.token_embedding_table(idx)
        if targets is None:
            loss = None
        else:
            B, T, C = logits.shape
            logits = logits.view(B * T, C)
            targets = targets.view(B * T)
            loss = F.cross_entropy(logits, targets)
        return logits, loss

    def generate(self, idx, max_new_tokens):
        for _ in range(max_new_tokens):
            logits, loss = self(idx)
            logits = logits[:, -1, :]
            probs = F.softmax(logits, dim=-1)
            idx_next = torch.multinomial(probs, num_samples=1)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


m = BigramLanguageModel(vocab_size)
logits, loss = m(xb, yb)
print(logits.shape)
print(loss)
print(decode(m.generate(idx=torch.zeros((1, 1), dtype=torch.long), max_new_tokens=100)[0].tolist()))

optimizer = torch.optim.AdamW(m.parameters(), lr=1e-3)
batch_size = 32
for _ in range(steps):
    xb, yb = get_batch("train")
    logits, loss = m(xb, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
print(loss.item())
print(decode(m.generate(idx=torch.zeros((1, 1), dtype=torch.long), max_new_tokens=500)[0].tolist()))
