"""Chapter 4 in PyTorch, as the lecture writes it: the causal average of a
(4, 8, 32) input three ways (loops; a tril matmul; softmax of a masked
matrix). Writes x and the three outputs."""
import torch
from torch.nn import functional as F

from common import flat, write

torch.manual_seed(1337)
B, T, C = 4, 8, 32  # batch, time, channels
x = torch.randn(B, T, C)

# version 1: loops. We want x[b, t] = mean_{i<=t} x[b, i]
xbow = torch.zeros((B, T, C))
for b in range(B):
    for t in range(T):
        xprev = x[b, :t + 1]  # (t, C)
        xbow[b, t] = torch.mean(xprev, 0)

# version 2: using matrix multiply for a weighted aggregation
wei = torch.tril(torch.ones(T, T))
wei = wei / wei.sum(1, keepdim=True)
xbow2 = wei @ x  # (B, T, T) @ (B, T, C) ----> (B, T, C)

# version 3: use Softmax
tril = torch.tril(torch.ones(T, T))
wei = torch.zeros((T, T))
wei = wei.masked_fill(tril == 0, float("-inf"))
wei = F.softmax(wei, dim=-1)
xbow3 = wei @ x
print(f"max |v1 - v2| {(xbow - xbow2).abs().max():.2e}, max |v1 - v3| {(xbow - xbow3).abs().max():.2e}")

write("attention_trick", {
    "shape": [B, T, C],
    "v1": flat(xbow),
    "v2": flat(xbow2),
    "v3": flat(xbow3),
}, inputs={"x": x})
