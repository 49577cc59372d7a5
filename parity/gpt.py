"""Chapter 8 in PyTorch: the lecture's gpt.py model at the `small` preset
(n_embd 64, 4 heads, 4 layers, block 32, dropout 0; the head scale
head_size**-0.5, as after ng-video-lecture PR #6; gpt.py's later
_init_weights, N(0, 0.02) weights and zero biases), AdamW at 1e-3 on batches
of 16 blocks of 32 for 100 steps, from torch.manual_seed(1337).

It writes what charlm needs to take the same path: the initial weights, in
charlm's names and layout (the heads' (head_size, n_embd) maps side by side
as one (n_embd, n_embd) matrix per key, query and value), and the offsets of
every batch; PyTorch's loss of every step; and the logits of the initial
model on the first two rows of the first batch.

At these sizes the trajectory is sensitive: a different order of the same
sums moves later losses by ~1e-3 within 100 steps. So the script replays the
same 100 steps from the same weights on 2 threads as well, where PyTorch
adds in another order, and records those losses too: how far PyTorch moves
from itself is the yardstick for the later steps (see the appendix)."""
import copy

import torch
import torch.nn as nn
from torch.nn import functional as F

from common import data_path, flat, write

batch_size = 16
block_size = 32
steps = 100
learning_rate = 1e-3
n_embd = 64
n_head = 4
n_layer = 4
dropout = 0.0

torch.manual_seed(1337)
text = open(data_path("tinyshakespeare.txt"), encoding="utf-8").read()
chars = sorted(list(set(text)))
vocab_size = len(chars)
stoi = {ch: i for i, ch in enumerate(chars)}
data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
n = int(0.9 * len(data))
train_data = data[:n]


def get_batch():
    ix = torch.randint(len(train_data) - block_size, (batch_size,))
    x = torch.stack([train_data[i:i + block_size] for i in ix])
    y = torch.stack([train_data[i + 1:i + block_size + 1] for i in ix])
    return ix, x, y


class Head(nn.Module):
    """ one head of self-attention """

    def __init__(self, head_size):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.register_buffer('tril', torch.tril(torch.ones(block_size, block_size)))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        k = self.key(x)   # (B,T,hs)
        q = self.query(x)  # (B,T,hs)
        wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5  # (B, T, T)
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))  # (B, T, T)
        wei = F.softmax(wei, dim=-1)  # (B, T, T)
        wei = self.dropout(wei)
        v = self.value(x)  # (B,T,hs)
        return wei @ v  # (B, T, T) @ (B, T, hs) -> (B, T, hs)


class MultiHeadAttention(nn.Module):
    """ multiple heads of self-attention in parallel """

    def __init__(self, num_heads, head_size):
        super().__init__()
        self.heads = nn.ModuleList([Head(head_size) for _ in range(num_heads)])
        self.proj = nn.Linear(head_size * num_heads, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        out = torch.cat([h(x) for h in self.heads], dim=-1)
        return self.dropout(self.proj(out))


class FeedFoward(nn.Module):
    """ a simple linear layer followed by a non-linearity """

    def __init__(self, n_embd):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),
            nn.ReLU(),
            nn.Linear(4 * n_embd, n_embd),
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    """ Transformer block: communication followed by computation """

    def __init__(self, n_embd, n_head):
        super().__init__()
        head_size = n_embd // n_head
        self.sa = MultiHeadAttention(n_head, head_size)
        self.ffwd = FeedFoward(n_embd)
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)

    def forward(self, x):
        x = x + self.sa(self.ln1(x))
        x = x + self.ffwd(self.ln2(x))
        return x


class GPTLanguageModel(nn.Module):

    def __init__(self):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.blocks = nn.Sequential(*[Block(n_embd, n_head=n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)  # final layer norm
        self.lm_head = nn.Linear(n_embd, vocab_size)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets):
        B, T = idx.shape
        tok_emb = self.token_embedding_table(idx)  # (B,T,C)
        pos_emb = self.position_embedding_table(torch.arange(T))  # (T,C)
        x = tok_emb + pos_emb  # (B,T,C)
        x = self.blocks(x)  # (B,T,C)
        x = self.ln_f(x)  # (B,T,C)
        logits = self.lm_head(x)  # (B,T,vocab_size)
        loss = F.cross_entropy(logits.view(B * T, vocab_size), targets.view(B * T))
        return logits, loss


def side_by_side(heads, name):
    """The heads' (head_size, n_embd) weights as charlm's one (n_embd, n_embd)
    matrix: head h's transpose in columns h*head_size..(h+1)*head_size."""
    return torch.cat([getattr(h, name).weight.detach().T for h in heads], dim=1)


def charlm_weights(model):
    """Every weight, under charlm's name and in its layout."""
    w = {
        "embeddings.token_embedding_table.weight": model.token_embedding_table.weight,
        "embeddings.position_embedding_table.weight": model.position_embedding_table.weight,
        "ln_f.gamma": model.ln_f.weight, "ln_f.beta": model.ln_f.bias,
        "lm_head.weight": model.lm_head.weight, "lm_head.bias": model.lm_head.bias,
    }
    for i, b in enumerate(model.blocks):
        p = f"blocks.{i}."
        w.update({
            f"{p}ln1.gamma": b.ln1.weight, f"{p}ln1.beta": b.ln1.bias,
            f"{p}ln2.gamma": b.ln2.weight, f"{p}ln2.beta": b.ln2.bias,
            f"{p}proj.weight": b.sa.proj.weight, f"{p}proj.bias": b.sa.proj.bias,
            f"{p}ffwd.0.weight": b.ffwd.net[0].weight, f"{p}ffwd.0.bias": b.ffwd.net[0].bias,
            f"{p}ffwd.2.weight": b.ffwd.net[2].weight, f"{p}ffwd.2.bias": b.ffwd.net[2].bias,
        })
        for name in ("key", "query", "value"):
            w[f"{p}sa.{name}"] = side_by_side(b.sa.heads, name)
    return {k: v.detach().clone() for k, v in w.items()}


model = GPTLanguageModel()
print(sum(p.numel() for p in model.parameters()), "parameters")
weights = charlm_weights(model)
initial = copy.deepcopy(model.state_dict())

# 100 AdamW steps; the first batch's first two rows through the initial model
optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
offsets, losses = [], []
for step in range(steps):
    ix, xb, yb = get_batch()
    if step == 0:
        with torch.no_grad():
            logits, _ = model(xb[:2], yb[:2])  # (2, T, vocab_size)
    _, loss = model(xb, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    offsets.append(ix)
    losses.append(loss.item())
print(f"step losses {losses[0]:.4f} ... {losses[-1]:.4f}")

# the same steps again, on 2 threads
torch.set_num_threads(2)
model.load_state_dict(initial)
optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
losses_2_threads = []
for ix in offsets:
    xb = torch.stack([train_data[i:i + block_size] for i in ix])
    yb = torch.stack([train_data[i + 1:i + block_size + 1] for i in ix])
    _, loss = model(xb, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    losses_2_threads.append(loss.item())
spread = max(abs(a - b) for a, b in zip(losses, losses_2_threads))
print(f"PyTorch on 1 and 2 threads: batch losses up to {spread:.1e} apart")

write("gpt", {
    "batch_size": batch_size,
    "block_size": block_size,
    "learning_rate": learning_rate,
    "weight_decay": optimizer.defaults["weight_decay"],
    "step_losses": losses,
    "step_losses_2_threads": losses_2_threads,
    "logits": flat(logits),
}, inputs={
    **weights,
    "offsets": torch.stack(offsets),  # (steps, batch_size)
})
