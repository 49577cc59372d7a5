"""Chapter 3 in PyTorch: the lecture's bigram.py model and training loop
(batches of 32 blocks of 8 tokens, AdamW at learning rate 1e-2) for 100
steps, from torch.manual_seed(1337).

The two sides' random generators differ, so this script writes what charlm
needs to take the same path: the initial embedding table and the offsets of
every batch. It records each step's loss, the loss of the first batch after
the last step, and the final table."""
import torch
import torch.nn as nn
from torch.nn import functional as F

from common import data_path, flat, write

batch_size = 32
block_size = 8
steps = 100
learning_rate = 1e-2

torch.manual_seed(1337)
text = open(data_path("tinyshakespeare.txt"), encoding="utf-8").read()
chars = sorted(list(set(text)))
vocab_size = len(chars)
stoi = {ch: i for i, ch in enumerate(chars)}
data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
n = int(0.9 * len(data))
train_data = data[:n]


def batch_at(ix):
    x = torch.stack([train_data[i:i + block_size] for i in ix])
    y = torch.stack([train_data[i + 1:i + block_size + 1] for i in ix])
    return x, y


def get_batch():
    ix = torch.randint(len(train_data) - block_size, (batch_size,))
    return ix, *batch_at(ix)


class BigramLanguageModel(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx, targets):
        logits = self.token_embedding_table(idx)  # (B, T, C)
        B, T, C = logits.shape
        logits = logits.view(B * T, C)
        targets = targets.view(B * T)
        loss = F.cross_entropy(logits, targets)
        return logits, loss


model = BigramLanguageModel(vocab_size)
table = model.token_embedding_table.weight.detach().clone()
optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)

offsets, losses = [], []
for step in range(steps):
    ix, xb, yb = get_batch()
    logits, loss = model(xb, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    offsets.append(ix)
    losses.append(loss.item())

with torch.no_grad():
    final_loss = model(*batch_at(offsets[0]))[1].item()
print(f"step losses {losses[0]:.4f} ... {losses[-1]:.4f}; first batch after {steps} steps: {final_loss:.4f}")

write("bigram_embedding", {
    "batch_size": batch_size,
    "block_size": block_size,
    "learning_rate": learning_rate,
    "weight_decay": optimizer.defaults["weight_decay"],
    "step_losses": losses,
    "final_loss": final_loss,
    "final_table": flat(model.token_embedding_table.weight),
}, inputs={
    "token_embedding_table.weight": table,
    "offsets": torch.stack(offsets),  # (steps, batch_size)
})
