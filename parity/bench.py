"""charlm and PyTorch side by side: the hot loop of each stage, timed on this
machine in one run, the two sides alternating, at 1 and at 2 threads each.

    cargo build --release
    CHARLM_DATA_DIR=/path/to/data python3 parity/bench.py [--rounds 3]

Each round times every workload in PyTorch (in this process) and then in
charlm (`charlm bench --workload W --threads N --json`, a fresh process), at
1 and then 2 threads; the rounds repeat that. A side's time is its best
sample over all rounds at its best thread count. Prints the table, and
writes it for the book's appendix to chapters/figures/speed/ (numbers.md,
and bench.json with every sample).

The PyTorch code is the lecture's wherever the lecture has it; each
workload does the same arithmetic on both sides (see the appendix).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import torch
import torch.nn as nn
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import data_path  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHARLM = os.path.join(ROOT, "target", "release", "charlm")

# workload: (what it is, target ratio charlm / PyTorch or None)
WORKLOADS = {
    "counts": ("chapter 1: names → N, P and the NLL", 0.05),
    "onehot-step": ("chapter 2: one full-batch one-hot step", 0.5),
    "lookup-step": ("chapter 2: one full-batch lookup step", None),
    "bigram-step": ("chapter 3: one bigram.py training step", 0.2),
    "attention-v1": ("chapter 4: causal average, loops", None),
    "attention-v2": ("chapter 4: causal average, tril matmul", 1.0),
    "attention-v3": ("chapter 4: causal average, masked softmax", 1.0),
    "attention-v2-dense": ("chapter 4: tril matmul, dense on both sides", None),
    "head-step": ("chapter 5: one head, forward + backward", 1.0),
    "multihead-step": ("chapter 6: one training step, 4 heads of 8", 0.3),
    "blocks-step": ("chapter 7: one training step, 3 blocks", 0.3),
    "layernorm-step": ("chapter 7: one training step, 3 pre-norm blocks", 0.3),
    "gpt-small-step": ("chapter 8: one training step of the small preset", 0.7),
    "gpt-cpu-step": ("chapter 8: one training step of the cpu preset", 0.7),
    "gpt-lecture-step": ("chapter 8: one training step of the lecture preset", 1.0),
}

# workloads too slow for the usual samples (a step of the lecture preset
# takes tens of seconds): one round, two samples of one step per side and
# thread count after the warm-up step; and their peak memory, each side in a
# process of its own (the largest resident set, as `/usr/bin/time -v`
# reports it)
LONG = {"gpt-lecture-step"}

# chapter 8's presets as gpt.py's hyperparameters (n_embd, n_head, n_layer,
# block_size, batch_size, AdamW's settings, gradient clipping)
GPT_PRESETS = {
    "gpt-small-step": dict(n_embd=64, n_head=4, n_layer=4, block_size=32, batch_size=16,
                           adamw=dict(lr=1e-3), clip=None),
    "gpt-cpu-step": dict(n_embd=128, n_head=4, n_layer=4, block_size=64, batch_size=12,
                         adamw=dict(lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1), clip=1.0),
    "gpt-lecture-step": dict(n_embd=384, n_head=6, n_layer=6, block_size=256, batch_size=64,
                             adamw=dict(lr=3e-4), clip=None, dropout=0.2, steps=5000),
}


def gpt_step_flop(n_embd, n_head, n_layer, block_size, batch_size, vocab=65, **_):
    """Floating-point operations of one training step of gpt.py's model:
    the multiply-adds of its matrix products (per token and layer: q, k, v
    and the projection, 4·C²; the feed-forward layer, 8·C²; the affinities
    and the weighted sum over all T positions, 2·T·C, masked or not, as
    PyTorch computes them; then lm_head, C·V), times 2 for a multiply-add,
    times 3 for the forward pass and the two products of each backward."""
    per_token = n_layer * (12 * n_embd * n_embd + 2 * block_size * n_embd) + n_embd * vocab
    return 3 * 2 * per_token * block_size * batch_size

# multiply-adds × 2 of the dense matmul, where one workload is nothing else,
# and of chapter 8's training steps
FLOP = {"attention-v2-dense": 2 * 32 * 256 * 256 * 384,
        **{w: gpt_step_flop(**p) for w, p in GPT_PRESETS.items()}}


# ------------------------------------------------------------ the workloads

def names_pairs(words, stoi):
    xs, ys = [], []
    for w in words:
        chs = ["."] + list(w) + ["."]
        for ch1, ch2 in zip(chs, chs[1:]):
            xs.append(stoi[ch1])
            ys.append(stoi[ch2])
    return torch.tensor(xs), torch.tensor(ys)


def prepare(workload, words, text):
    """One iteration of `workload` in PyTorch, as a function."""
    torch.manual_seed(1337)
    if workload in ("counts", "onehot-step", "lookup-step"):
        chars = sorted(list(set("".join(words))))
        stoi = {s: i + 1 for i, s in enumerate(chars)}
        stoi["."] = 0
    if workload == "counts":
        def counts():  # from the names: pairs, N by bincount, P, the NLL
            xs, ys = names_pairs(words, stoi)
            N = torch.bincount(xs * 27 + ys, minlength=27 * 27).view(27, 27)
            P = (N + 1).float()
            P /= P.sum(1, keepdims=True)
            return -P.log()[xs, ys].mean().item()
        return counts
    if workload in ("onehot-step", "lookup-step"):
        xs, ys = names_pairs(words, stoi)
        num = xs.nelement()
        g = torch.Generator().manual_seed(2147483647)
        W = torch.randn((27, 27), generator=g, requires_grad=True)
        if workload == "onehot-step":
            xenc = F.one_hot(xs, num_classes=27).float()  # made once, outside the step

            def step():  # the lecture's step
                logits = xenc @ W
                counts = logits.exp()
                probs = counts / counts.sum(1, keepdims=True)
                loss = -probs[torch.arange(num), ys].log().mean() + 0.01 * (W**2).mean()
                W.grad = None
                loss.backward()
                W.data += -0.1 * W.grad
            return step
        # charlm's lookup: log_softmax of W's 27 rows, weighted by how often
        # each pair occurs (the mean over the examples as a sum over the table)
        freq = torch.bincount(xs * 27 + ys, minlength=27 * 27).view(27, 27).float() / num

        def lookup():
            loss = -(W.log_softmax(1) * freq).sum() + 0.01 * (W**2).mean()
            W.grad = None
            loss.backward()
            W.data += -0.1 * W.grad
        return lookup
    if workload == "bigram-step":
        chars = sorted(list(set(text)))
        stoi = {ch: i for i, ch in enumerate(chars)}
        data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
        train_data = data[:int(0.9 * len(data))]
        batch_size, block_size = 32, 8

        def get_batch():
            ix = torch.randint(len(train_data) - block_size, (batch_size,))
            x = torch.stack([train_data[i:i + block_size] for i in ix])
            y = torch.stack([train_data[i + 1:i + block_size + 1] for i in ix])
            return x, y
        model = nn.Embedding(len(chars), len(chars))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)

        def step():  # bigram.py's loop body
            xb, yb = get_batch()
            logits = model(xb)
            B, T, C = logits.shape
            loss = F.cross_entropy(logits.view(B * T, C), yb.view(B * T))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return step
    if workload in ("multihead-step", "blocks-step", "layernorm-step"):
        return ladder_step(workload, text)
    if workload in GPT_PRESETS:
        return ladder_step(workload, text, **GPT_PRESETS[workload])
    B, T, C = 32, 256, 384
    x = torch.randn(B, T, C)
    if workload == "attention-v1":
        def v1():
            xbow = torch.zeros((B, T, C))
            for b in range(B):
                for t in range(T):
                    xprev = x[b, :t + 1]
                    xbow[b, t] = torch.mean(xprev, 0)
            return xbow
        return v1
    if workload in ("attention-v2", "attention-v2-dense"):
        def v2():
            wei = torch.tril(torch.ones(T, T))
            wei = wei / wei.sum(1, keepdim=True)
            return wei @ x
        return v2
    if workload == "attention-v3":
        def v3():
            tril = torch.tril(torch.ones(T, T))
            wei = torch.zeros((T, T))
            wei = wei.masked_fill(tril == 0, float("-inf"))
            wei = F.softmax(wei, dim=-1)
            return wei @ x
        return v3
    if workload == "head-step":
        head_size = 64
        key = nn.Linear(C, head_size, bias=False)
        query = nn.Linear(C, head_size, bias=False)
        value = nn.Linear(C, head_size, bias=False)
        tril = torch.tril(torch.ones(T, T))
        xg = x.clone().requires_grad_(True)

        def head():  # the lecture's Head.forward, then backward
            k = key(xg)
            q = query(xg)
            wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5
            wei = wei.masked_fill(tril[:T, :T] == 0, float("-inf"))
            wei = F.softmax(wei, dim=-1)
            out = wei @ value(xg)
            for p in (key.weight, query.weight, value.weight, xg):
                p.grad = None
            out.sum().backward()
        return head
    raise ValueError(workload)


def ladder_step(workload, text, n_embd=32, n_head=4, n_layer=3, block_size=8, batch_size=32,
                adamw=None, clip=None, dropout=0.0, steps=None):
    """One training step of a rung of the lecture's ladder (chapters 6-7):
    gpt.py's classes at n_embd 32, 4 heads, block 8, batch 32, AdamW 1e-3;
    or, at chapter 8's sizes, gpt.py's whole model with its _init_weights."""
    gpt = workload in GPT_PRESETS
    chars = sorted(list(set(text)))
    stoi = {ch: i for i, ch in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    train_data = data[:int(0.9 * len(data))]
    vocab_size = len(chars)
    norm = nn.LayerNorm if workload == "layernorm-step" or gpt else (lambda n: nn.Identity())

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
            k, q = self.key(x), self.query(x)
            wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5
            wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))
            wei = F.softmax(wei, dim=-1)
            wei = self.dropout(wei)
            return wei @ self.value(x)

    class MultiHeadAttention(nn.Module):
        def __init__(self, num_heads, head_size, proj):
            super().__init__()
            self.heads = nn.ModuleList([Head(head_size) for _ in range(num_heads)])
            self.proj = nn.Linear(n_embd, n_embd) if proj else nn.Identity()
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            return self.dropout(self.proj(torch.cat([h(x) for h in self.heads], dim=-1)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.sa = MultiHeadAttention(n_head, n_embd // n_head, True)
            self.ffwd = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.ReLU(), nn.Linear(4 * n_embd, n_embd),
                                      nn.Dropout(dropout))
            self.ln1, self.ln2 = norm(n_embd), norm(n_embd)

        def forward(self, x):
            x = x + self.sa(self.ln1(x))
            return x + self.ffwd(self.ln2(x))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
            self.position_embedding_table = nn.Embedding(block_size, n_embd)
            if workload == "multihead-step":
                self.blocks = MultiHeadAttention(n_head, n_embd // n_head, False)
            else:
                self.blocks = nn.Sequential(*[Block() for _ in range(n_layer)])
            self.ln_f = norm(n_embd)
            self.lm_head = nn.Linear(n_embd, vocab_size)
            if gpt:
                self.apply(self._init_weights)

        def _init_weights(self, module):  # gpt.py's
            if isinstance(module, nn.Linear):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

        def forward(self, idx, targets):
            B, T = idx.shape
            x = self.token_embedding_table(idx) + self.position_embedding_table(torch.arange(T))
            logits = self.lm_head(self.ln_f(self.blocks(x)))
            return F.cross_entropy(logits.view(B * T, vocab_size), targets.view(B * T))

    model = Model()
    optimizer = torch.optim.AdamW(model.parameters(), **(adamw or dict(lr=1e-3)))

    def step():  # gpt.py's loop body (with nanoGPT's clipping where the preset has it)
        ix = torch.randint(len(train_data) - block_size, (batch_size,))
        xb = torch.stack([train_data[i:i + block_size] for i in ix])
        yb = torch.stack([train_data[i + 1:i + block_size + 1] for i in ix])
        loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
    return step


def time_torch(fn, samples, min_sample):
    """Seconds per iteration of each sample, as `charlm bench` measures."""
    t0 = time.perf_counter()
    fn()  # warm-up
    once = max(time.perf_counter() - t0, 1e-9)
    iterations = max(1, min(1_000_000, int(-(-min_sample // once))))
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        for _ in range(iterations):
            fn()
        out.append((time.perf_counter() - t0) / iterations)
    return out


def peak_memory():
    """This process's peak resident memory in bytes: VmHWM, the high-water
    mark of its own address space (what `/usr/bin/time -v` reports as the
    maximum resident set size of a program started on its own). Not
    getrusage's ru_maxrss, which in a child forked from this large process
    counts the parent's pages until it execs."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def time_charlm(workload, threads, samples, min_sample):
    """Seconds per iteration of each sample, and the process's peak memory."""
    cmd = [CHARLM, "bench", "--workload", workload, "--threads", str(threads),
           "--samples", str(samples), "--sample-ms", str(int(min_sample * 1000)), "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    return report["timings"][0]["seconds"], report.get("peak_memory") or 0


def torch_peak(workload, threads):
    """Peak memory of a process that prepares `workload` in PyTorch and runs
    it twice (warm-up and one timed iteration, as a timing run does)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", workload, "--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_memory"]


def peak_gflops():
    """The machine's nominal fp32 peak: cores × clock × 32 floating-point
    operations a cycle (two 8-wide fused multiply-adds, AVX2 with FMA)."""
    mhz = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    mhz = float(line.split(":", 1)[1])
                    break
    except OSError:
        pass
    return None if mhz is None else os.cpu_count() * mhz / 1000 * 32


# ------------------------------------------------------------ the report

def fmt_time(s):
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms" if s < 0.1 else f"{s * 1e3:.0f} ms"
    return f"{s * 1e6:.3g} µs"


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def rustc():
    try:
        return subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "rustc (unknown version)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=3, help="samples per side, thread count and round")
    ap.add_argument("--sample-ms", type=int, default=200)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--workload", action="append", help="only these (repeatable)")
    ap.add_argument("--out", default=os.path.join(ROOT, "chapters", "figures", "speed"),
                    help="where numbers.md and bench.json go ('' for nowhere)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # one workload, run twice (for torch_peak)
    args = ap.parse_args()
    if args.worker:
        torch.set_num_threads(int(args.threads))
        words = open(data_path("names.txt")).read().splitlines()
        text = open(data_path("tinyshakespeare.txt"), encoding="utf-8").read()
        fn = prepare(args.worker, words, text)
        fn()
        fn()
        print(json.dumps({"peak_memory": peak_memory()}))
        return
    if not os.path.exists(CHARLM):
        sys.exit(f"{CHARLM} not found: run `cargo build --release` first")
    workloads = args.workload or list(WORKLOADS)
    threads = [int(t) for t in args.threads.split(",")]
    words = open(data_path("names.txt")).read().splitlines()
    text = open(data_path("tinyshakespeare.txt"), encoding="utf-8").read()
    fns = {w: prepare(w, words, text) for w in workloads}
    min_sample = args.sample_ms / 1000
    samples = {(side, w, t): [] for side in ("torch", "charlm") for w in workloads for t in threads}
    peaks = {}
    for r in range(args.rounds):
        for w in workloads:
            if w in LONG and r > 0:
                continue
            n = 2 if w in LONG else args.samples
            for t in threads:
                torch.set_num_threads(t)
                samples[("torch", w, t)] += time_torch(fns[w], n, min_sample)
                seconds, peak = time_charlm(w, t, n, min_sample)
                samples[("charlm", w, t)] += seconds
                if w in LONG:
                    peaks[("charlm", w)] = max(peak, peaks.get(("charlm", w), 0))
            print(f"round {r + 1}/{args.rounds}: {w} done", file=sys.stderr)
    for w in workloads:
        if w in LONG:
            peaks[("torch", w)] = max(torch_peak(w, t) for t in threads)
    rows = []
    for w in workloads:
        best = {}
        for side in ("torch", "charlm"):
            t_best = min(threads, key=lambda t: min(samples[(side, w, t)]))
            best[side] = (min(samples[(side, w, t_best)]), t_best)
        ratio = best["charlm"][0] / best["torch"][0]
        what, target = WORKLOADS[w]
        rows.append({
            "workload": w, "what": what,
            "torch_s": best["torch"][0], "torch_threads": best["torch"][1],
            "charlm_s": best["charlm"][0], "charlm_threads": best["charlm"][1],
            "ratio": ratio, "target": target,
            "met": None if target is None else ratio <= target,
        })
        if w in FLOP:
            rows[-1]["torch_gflops"] = FLOP[w] / best["torch"][0] / 1e9
            rows[-1]["charlm_gflops"] = FLOP[w] / best["charlm"][0] / 1e9
        if w in LONG:
            rows[-1]["torch_peak_mb"] = peaks[("torch", w)] / 1e6
            rows[-1]["charlm_peak_mb"] = peaks[("charlm", w)] / 1e6
    table = ["| workload | PyTorch | charlm | charlm / PyTorch | target |",
             "|---|---:|---:|---:|---|"]
    for r in rows:
        target = "—" if r["target"] is None else f"≤ {r['target']:g} {'✓' if r['met'] else '✗ missed'}"
        table.append(f"| {r['what']} (`{r['workload']}`) | {fmt_time(r['torch_s'])} ({r['torch_threads']}t) "
                     f"| {fmt_time(r['charlm_s'])} ({r['charlm_threads']}t) | {r['ratio']:.3f} | {target} |")
    table = "\n".join(table)
    print(table)
    peak = peak_gflops()
    gpt = ["| training step | GFLOP per step | PyTorch | charlm | charlm, of the nominal peak | peak memory, PyTorch | charlm |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["workload"] in GPT_PRESETS:
            pct = "—" if peak is None else f"{100 * r['charlm_gflops'] / peak:.0f}%"
            mem = [f"{r[k]:,.0f} MB" if k in r else "—" for k in ("torch_peak_mb", "charlm_peak_mb")]
            gpt.append(f"| `{r['workload']}` | {FLOP[r['workload']] / 1e9:.1f} | {r['torch_gflops']:.0f} GFLOP/s "
                       f"| {r['charlm_gflops']:.0f} GFLOP/s | {pct} | {mem[0]} | {mem[1]} |")
    gpt_table = "\n".join(gpt) if len(gpt) > 2 else ""
    print(gpt_table)
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "versions": f"PyTorch {torch.__version__}, Python {platform.python_version()}, {rustc()}, dfdx 0.13.0",
        "method": f"best of {args.rounds * args.samples} samples of at least {args.sample_ms} ms per side, "
                  f"in {args.rounds} alternating rounds, at {' and '.join(map(str, threads))} threads"
                  + (f" ({', '.join(sorted(LONG & set(workloads)))}: best of two steps per side and thread "
                     f"count, after a warm-up step)" if LONG & set(workloads) else ""),
        "peak": "unknown" if peak is None else f"{peak:.0f}",
    }
    for k, v in meta.items():
        print(f"{k}: {v}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        raw = {**meta, "rows": rows,
               "samples": [{"side": s, "workload": w, "threads": t, "seconds": v}
                           for (s, w, t), v in samples.items()]}
        with open(os.path.join(args.out, "bench.json"), "w") as f:
            json.dump(raw, f, indent=1)
            f.write("\n")
        parts = ["<!-- Generated by `python3 parity/bench.py`; do not edit. -->"]
        for name, value in [("table", table), ("gpt_table", gpt_table), *meta.items()] + [
                (f"{r['workload'].replace('-', '_')}_{k}", v) for r in rows for k, v in
                [("torch", fmt_time(r["torch_s"])), ("charlm", fmt_time(r["charlm_s"])),
                 ("ratio", f"{r['ratio']:.3f}"), ("speedup", f"{1 / r['ratio']:.1f}")]
                + [(k, f"{v:.0f}") for k, v in r.items() if k.endswith("gflops") or k.endswith("peak_mb")]
                + ([("gflop", f"{FLOP[r['workload']] / 1e9:.1f}")] if r["workload"] in FLOP else [])
                + [(f"hours_{side}", f"{r[side + '_s'] * GPT_PRESETS[r['workload']]['steps'] / 3600:.1f}")
                   for side in ("torch", "charlm") if GPT_PRESETS.get(r["workload"], {}).get("steps")]]:
            parts.append(f"ANCHOR: {name}\n{value}\nANCHOR_END: {name}")
        with open(os.path.join(args.out, "numbers.md"), "w") as f:
            f.write("\n".join(parts) + "\n")
        print(f"wrote {os.path.relpath(args.out, ROOT)}/numbers.md and bench.json", file=sys.stderr)


if __name__ == "__main__":
    main()
