"""Regenerates every reference file in parity/ref/: runs each stage's
script in PyTorch, one after the other, each in a fresh interpreter.

    python3 -m pip install torch safetensors numpy
    CHARLM_DATA_DIR=/path/to/data python3 parity/run.py

Only this needs Python: `cargo test` compares charlm against the committed
files (tests/parity.rs), and `charlm parity` prints the comparison."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STAGES = ["bigram_counts", "bigram_onehot", "bigram_embedding", "attention_trick", "self_attention_head", "ladder", "gpt"]

for stage in STAGES:
    print(f"== {stage}")
    subprocess.run([sys.executable, os.path.join(HERE, f"{stage}.py")], check=True)
