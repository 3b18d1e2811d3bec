#!/usr/bin/env python3
"""Converts an official PyTorch checkpoint (.pth / .pth.tar) to safetensors for rev.

    python3 examples/convert_checkpoint.py revbifpn_s0.pth.tar revbifpn_s0.safetensors
    python3 examples/convert_checkpoint.py revcol_tiny_1k.pth revcol_t_ema.safetensors --entry state_dict_ema

Reads the state_dict (also when it is nested under "state_dict", "model" or "model_state", as
RevBiFPN's, RevCol's and SlowFast's checkpoints keep it, or under the entry --entry names, such as
RevCol's exponential moving average "state_dict_ema"; DataParallel's "module." prefix removed),
and writes every tensor under its state_dict key:
floating-point tensors as F32 (or F64 with --f64), integer buffers such as BatchNorm's
num_batches_tracked as I64. rev's models load the result by the same keys
(`model.load(rev::io::load(path))`). Needs only torch; the safetensors writer is inline.
"""
import argparse
import json
import struct

import torch


def state_dict_of(checkpoint, entry=None):
    if entry is not None:
        if not isinstance(checkpoint, dict) or entry not in checkpoint:
            keys = sorted(checkpoint) if isinstance(checkpoint, dict) else []
            raise SystemExit(f"convert_checkpoint: the checkpoint has no entry '{entry}' (it has {keys})")
        return state_dict_of(checkpoint[entry])
    if isinstance(checkpoint, dict):
        for key in ("state_dict", "model", "model_state"):
            if key in checkpoint and isinstance(checkpoint[key], dict):
                return state_dict_of(checkpoint[key])
        if all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            return checkpoint
    if hasattr(checkpoint, "state_dict"):
        return checkpoint.state_dict()
    raise SystemExit("convert_checkpoint: no state_dict found in the checkpoint")


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        dtype = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}[t.dtype]
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for b in blobs:
            f.write(b)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("output")
    parser.add_argument("--f64", action="store_true", help="write floating-point tensors as F64")
    parser.add_argument("--entry", help="the checkpoint entry holding the state_dict (e.g. state_dict_ema)")
    args = parser.parse_args()
    state = state_dict_of(torch.load(args.checkpoint, map_location="cpu"), args.entry)
    tensors = {}
    for key, value in state.items():
        name = key[len("module."):] if key.startswith("module.") else key
        if value.is_floating_point():
            value = value.to(torch.float64 if args.f64 else torch.float32)
        else:
            value = value.to(torch.int64)
        tensors[name] = value
    write_safetensors(args.output, tensors, {"source": args.checkpoint, "format": "pt"})
    print(f"wrote {len(tensors)} tensors to {args.output}")


if __name__ == "__main__":
    main()
