"""Chapters 6 and 7 in PyTorch: the lecture's gpt.py model at the ladder's
"layernorm" rung (n_embd 32, 4 heads, 3 blocks, block 8, dropout 0; the head
scale head_size**-0.5, as after ng-video-lecture PR #6), AdamW at 1e-3 on
batches of 32 blocks of 8 for 100 steps, from torch.manual_seed(1337).

It writes what charlm needs to take the same path: the initial weights, in
charlm's names and layout (the four heads' (head_size, n_embd) maps side by
side as one (n_embd, n_embd) matrix per key, query and value), and the offsets
of every batch; PyTorch's loss of every step. Then two checks of the layers
alone, with random inputs and a random upstream gradient (the loss is
sum(out * upstream)): block 0 of the initial model, forward and every
gradient; and LayerNorm with random gamma and beta, forward and backward."""
import torch
import torch.nn as nn
from torch.nn import functional as F

from common import data_path, flat, write

batch_size = 32
block_size = 8
steps = 100
learning_rate = 1e-3
n_embd = 32
n_head = 4
n_layer = 3
dropout = 0.0

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
        out = wei @ v  # (B, T, T) @ (B, T, hs) -> (B, T, hs)
        return out


class MultiHeadAttention(nn.Module):
    """ multiple heads of self-attention in parallel """

    def __init__(self, num_heads, head_size):
        super().__init__()
        self.heads = nn.ModuleList([Head(head_size) for _ in range(num_heads)])
        self.proj = nn.Linear(n_embd, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        out = torch.cat([h(x) for h in self.heads], dim=-1)
        out = self.dropout(self.proj(out))
        return out


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


def block_weights(block, prefix):
    w = {
        f"{prefix}ln1.gamma": block.ln1.weight, f"{prefix}ln1.beta": block.ln1.bias,
        f"{prefix}ln2.gamma": block.ln2.weight, f"{prefix}ln2.beta": block.ln2.bias,
        f"{prefix}proj.weight": block.sa.proj.weight, f"{prefix}proj.bias": block.sa.proj.bias,
        f"{prefix}ffwd.0.weight": block.ffwd.net[0].weight, f"{prefix}ffwd.0.bias": block.ffwd.net[0].bias,
        f"{prefix}ffwd.2.weight": block.ffwd.net[2].weight, f"{prefix}ffwd.2.bias": block.ffwd.net[2].bias,
    }
    for name in ("key", "query", "value"):
        w[f"{prefix}sa.{name}"] = side_by_side(block.sa.heads, name)
    return {k: v.detach().clone() for k, v in w.items()}


model = GPTLanguageModel()
weights = {
    "embeddings.token_embedding_table.weight": model.token_embedding_table.weight.detach().clone(),
    "embeddings.position_embedding_table.weight": model.position_embedding_table.weight.detach().clone(),
    "ln_f.gamma": model.ln_f.weight.detach().clone(),
    "ln_f.beta": model.ln_f.bias.detach().clone(),
    "lm_head.weight": model.lm_head.weight.detach().clone(),
    "lm_head.bias": model.lm_head.bias.detach().clone(),
}
for i, block in enumerate(model.blocks):
    weights.update(block_weights(block, f"blocks.{i}."))
block0 = {k[len("blocks.0."):]: v for k, v in weights.items() if k.startswith("blocks.0.")}

# one block alone, forward and backward, from the initial block 0
x = torch.randn(2, block_size, n_embd, requires_grad=True)
upstream = torch.randn(2, block_size, n_embd)
out = model.blocks[0](x)
(out * upstream).sum().backward()
b = model.blocks[0]
block_grads = {
    "x": x.grad, "ln1.gamma": b.ln1.weight.grad, "ln1.beta": b.ln1.bias.grad,
    "proj.weight": b.sa.proj.weight.grad, "proj.bias": b.sa.proj.bias.grad,
    "ffwd.0.weight": b.ffwd.net[0].weight.grad, "ffwd.2.bias": b.ffwd.net[2].bias.grad,
    "sa.query": torch.cat([h.query.weight.grad.T for h in b.sa.heads], dim=1),
    "sa.key": torch.cat([h.key.weight.grad.T for h in b.sa.heads], dim=1),
    "sa.value": torch.cat([h.value.weight.grad.T for h in b.sa.heads], dim=1),
}
block_check = {"out": flat(out), **{f"grad {k}": flat(v) for k, v in block_grads.items()}}
model.zero_grad(set_to_none=True)

# LayerNorm alone, with gamma and beta away from 1 and 0
ln = nn.LayerNorm(n_embd)
with torch.no_grad():
    ln.weight.copy_(1 + 0.5 * torch.randn(n_embd))
    ln.bias.copy_(0.5 * torch.randn(n_embd))
ln_x = (3 * torch.randn(4, block_size, n_embd) + 1).requires_grad_(True)
ln_up = torch.randn(4, block_size, n_embd)
ln_out = ln(ln_x)
(ln_out * ln_up).sum().backward()
ln_check = {"out": flat(ln_out), "grad x": flat(ln_x.grad), "grad gamma": flat(ln.weight.grad), "grad beta": flat(ln.bias.grad)}

# 100 AdamW steps
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
print(f"step losses {losses[0]:.4f} ... {losses[-1]:.4f}")

write("ladder", {
    "batch_size": batch_size,
    "block_size": block_size,
    "learning_rate": learning_rate,
    "weight_decay": optimizer.defaults["weight_decay"],
    "step_losses": losses,
    "block": block_check,
    "layernorm": ln_check,
}, inputs={
    **weights,
    "offsets": torch.stack(offsets),  # (steps, batch_size)
    "block.x": x.detach(),
    "block.upstream": upstream,
    "ln.gamma": ln.weight.detach(),
    "ln.beta": ln.bias.detach(),
    "ln.x": ln_x.detach(),
    "ln.upstream": ln_up,
})
