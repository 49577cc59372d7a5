"""Chapter 5 in PyTorch, as the lecture writes it ("version 4:
self-attention!"): one head of size 16 on a (4, 8, 32) input, forward and
backward. The backward pass starts from a random upstream gradient
(the loss is sum(out * upstream)), so that every gradient is exercised.

nn.Linear keeps its weight as (out, in) and computes x @ weight.T; charlm's
head keeps the (C, head_size) matrix itself. The inputs are written in
charlm's layout: key = key.weight.T."""
import torch
import torch.nn as nn
from torch.nn import functional as F

from common import flat, write

torch.manual_seed(1337)
B, T, C = 4, 8, 32  # batch, time, channels
x = torch.randn(B, T, C, requires_grad=True)

# let's see a single Head perform self-attention
head_size = 16
key = nn.Linear(C, head_size, bias=False)
query = nn.Linear(C, head_size, bias=False)
value = nn.Linear(C, head_size, bias=False)
k = key(x)  # (B, T, 16)
q = query(x)  # (B, T, 16)
wei = q @ k.transpose(-2, -1) * head_size**-0.5  # (B, T, 16) @ (B, 16, T) ---> (B, T, T)

tril = torch.tril(torch.ones(T, T))
wei = wei.masked_fill(tril == 0, float("-inf"))
wei = F.softmax(wei, dim=-1)

v = value(x)
out = wei @ v  # (B, T, T) @ (B, T, 16) ---> (B, T, 16)

upstream = torch.randn(B, T, head_size)  # dloss/dout
(out * upstream).sum().backward()
print(f"out {tuple(out.shape)}, |out| max {out.abs().max():.4f}, |dx| max {x.grad.abs().max():.4f}")

write("self_attention_head", {
    "shape": [B, T, C],
    "head_size": head_size,
    "out": flat(out),
    "wei": flat(wei),
    "grad_key": flat(key.weight.grad.T),  # (C, head_size), charlm's layout
    "grad_query": flat(query.weight.grad.T),
    "grad_value": flat(value.weight.grad.T),
    "grad_x": flat(x.grad),
}, inputs={
    "x": x,
    "key": key.weight.T,
    "query": query.weight.T,
    "value": value.weight.T,
    "upstream": upstream,
})
