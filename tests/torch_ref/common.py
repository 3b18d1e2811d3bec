"""Shared helpers of the PyTorch reference-data generators (run once by a developer; the
tests read the committed .safetensors files and never need Python).

Each gen_<family>.py writes <family>.safetensors beside itself with float64 tensors:
inputs, parameters, the upstream gradient `dout`, outputs and gradients, computed by PyTorch
in float64.  Usage: /usr/bin/python3 tests/torch_ref/gen_<family>.py (Debian's python3-torch)
"""
import json
import os
import struct

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def save(name, tensors, metadata=None):
    """Writes `tensors` (a dict name -> torch tensor) as HERE/<name>.safetensors, float64."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for key in sorted(tensors):
        t = tensors[key].detach().to(torch.float64).contiguous()
        data = t.numpy().tobytes()
        header[key] = {"dtype": "F64", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    with open(os.path.join(HERE, name + ".safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for c in chunks:
            f.write(c)


def seeded(seed):
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def grads(out, dout, *tensors):
    """Backpropagates dout through out; returns the gradients of `tensors`."""
    return torch.autograd.grad(out, tensors, dout, allow_unused=True)
