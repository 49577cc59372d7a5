"""The lecture's gpt.py at its full configuration on a GPU, timed: PyTorch's
side of chapter 8's GPU numbers (issue 15; run by .ci/gpu-check on the lent
GPU machine, next to `charlm gpt --preset lecture --device cuda`).

gpt.py's classes and loop, unchanged but for the step count and the timing:
n_embd 384, 6 heads, 6 layers, block 256, batch 64, dropout 0.2, AdamW 3e-4,
_init_weights. Prints, and writes to --json, the seconds per step (median of
the timed steps, after --warmup) and the losses it estimates every
--eval-interval steps (eval_iters batches each, as gpt.py's estimate_loss).

    python3 parity/gpu_lecture.py --steps 300 --json out.json
    python3 parity/gpu_lecture.py --device cpu --tiny --steps 3   # a smoke test
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
from torch.nn import functional as F

from common import data_path

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=300)
ap.add_argument("--warmup", type=int, default=10)
ap.add_argument("--eval-interval", type=int, default=500)
ap.add_argument("--eval-iters", type=int, default=200)
ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
ap.add_argument("--tiny", action="store_true", help="n_embd 32, 2 layers, block 16, batch 4: a smoke test")
ap.add_argument("--json")
args = ap.parse_args()

batch_size, block_size, n_embd, n_head, n_layer = (4, 16, 32, 2, 2) if args.tiny else (64, 256, 384, 6, 6)
learning_rate, dropout, device = 3e-4, 0.2, args.device
eval_iters = min(args.eval_iters, 2) if args.tiny else args.eval_iters

torch.manual_seed(1337)
text = open(data_path("tinyshakespeare.txt"), encoding="utf-8").read()
chars = sorted(list(set(text)))
vocab_size = len(chars)
stoi = {ch: i for i, ch in enumerate(chars)}
data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
n = int(0.9 * len(data))
train_data, val_data = data[:n], data[n:]


def get_batch(split):
    data = train_data if split == 'train' else val_data
    ix = torch.randint(len(data) - block_size, (batch_size,))
    x = torch.stack([data[i:i + block_size] for i in ix])
    y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])
    return x.to(device), y.to(device)


@torch.no_grad()
def estimate_loss():
    out = {}
    model.eval()
    for split in ['train', 'val']:
        losses = torch.zeros(eval_iters)
        for k in range(eval_iters):
            X, Y = get_batch(split)
            _, loss = model(X, Y)
            losses[k] = loss.item()
        out[split] = losses.mean().item()
    model.train()
    return out


class Head(nn.Module):
    def __init__(self, head_size):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.register_buffer('tril', torch.tril(torch.ones(block_size, block_size)))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        k = self.key(x)
        q = self.query(x)
        wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))
        wei = F.softmax(wei, dim=-1)
        wei = self.dropout(wei)
        v = self.value(x)
        return wei @ v


class MultiHeadAttention(nn.Module):
    def __init__(self, num_heads, head_size):
        super().__init__()
        self.heads = nn.ModuleList([Head(head_size) for _ in range(num_heads)])
        self.proj = nn.Linear(head_size * num_heads, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        out = torch.cat([h(x) for h in self.heads], dim=-1)
        return self.dropout(self.proj(out))


class FeedFoward(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.ReLU(), nn.Linear(4 * n_embd, n_embd),
                                 nn.Dropout(dropout))

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
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
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        tok_emb = self.token_embedding_table(idx)
        pos_emb = self.position_embedding_table(torch.arange(T, device=device))
        x = tok_emb + pos_emb
        x = self.blocks(x)
        x = self.ln_f(x)
        logits = self.lm_head(x)
        loss = F.cross_entropy(logits.view(B * T, -1), targets.view(B * T)) if targets is not None else None
        return logits, loss


def sync():
    if device.startswith("cuda"):
        torch.cuda.synchronize()


model = GPTLanguageModel().to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
seconds, evals = [], []
for it in range(args.steps + 1):
    if it % args.eval_interval == 0 or it == args.steps:
        losses = estimate_loss()
        evals.append(dict(step=it, train=losses['train'], val=losses['val']))
        print(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}", flush=True)
    if it == args.steps:
        break
    sync()
    t0 = time.perf_counter()
    xb, yb = get_batch('train')
    logits, loss = model(xb, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    sync()
    if it >= args.warmup:
        seconds.append(time.perf_counter() - t0)

result = dict(
    device=torch.cuda.get_device_name() if device.startswith("cuda") else device,
    torch=torch.__version__,
    params=sum(p.numel() for p in model.parameters()),
    steps=args.steps,
    seconds_per_step=statistics.median(seconds) if seconds else None,
    evals=evals,
)
print(json.dumps(result))
if args.json:
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
