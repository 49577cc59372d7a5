"""What the reference scripts share: where the data is, and how their files
are written. Each script runs one stage of the lecture in PyTorch from given
inputs and writes, under parity/ref/:

- <stage>.safetensors: the inputs both sides start from (initial weights,
  batch offsets, random tensors), written here once and read by charlm;
- <stage>.json: PyTorch's values, which charlm's tests compare against.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file

REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref")

# One thread: PyTorch's reductions may add in another order on more threads,
# and the reference values should not depend on the machine.
torch.set_num_threads(1)


def data_path(name):
    """names.txt or tinyshakespeare.txt, where charlm looks: in
    $CHARLM_DATA_DIR, else in ./data."""
    for folder in (os.environ.get("CHARLM_DATA_DIR"), "data"):
        if folder and os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    sys.exit(f"{name} not found: put it in ./data or set CHARLM_DATA_DIR to its folder")


def flat(t):
    """A tensor's values as one flat list (row-major). A float32 is exact as
    a Python float, and json writes floats so that they read back exactly."""
    return t.detach().reshape(-1).tolist()


def write(stage, values, inputs=None):
    """parity/ref/<stage>.json (and <stage>.safetensors for the inputs)."""
    os.makedirs(REF, exist_ok=True)
    values = {"stage": stage, "torch": torch.__version__, **values}
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in values.items()]
    with open(os.path.join(REF, f"{stage}.json"), "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")
    if inputs is not None:
        tensors = {k: v.detach().contiguous() for k, v in inputs.items()}
        save_file(tensors, os.path.join(REF, f"{stage}.safetensors"))
    print(f"wrote parity/ref/{stage}.json" + (" and .safetensors" if inputs else ""))
