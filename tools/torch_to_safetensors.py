#!/usr/bin/env python3
"""Move models between the seed's PyTorch code and harvit.

  torch_to_safetensors.py to-safetensors model.pt model.safetensors [--heads 4] [--T 128]
        [--class-names Walking,Jogging,...]
      model.pt is what the seed's code saves: torch.save(model.state_dict(), path) (also accepted:
      a dict holding it under "state_dict" / "model_state_dict" / "model", and DataParallel's
      "module." prefixes). The model config is inferred from the tensor shapes; the head count
      cannot be (only H*A can), so it comes from --heads (the seed uses 4).
  torch_to_safetensors.py to-torch model.safetensors model.pt
      writes a state_dict that VisionTransformer(...).load_state_dict(..., strict=True) accepts.

Tensor names are the seed's state_dict names in both directions; the safetensors metadata holds
the config (and class names) the way harvit writes it.
"""
import argparse
import collections
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


def die(msg):
    print(f"torch_to_safetensors: error: {msg}", file=sys.stderr)
    sys.exit(1)


def unwrap_state_dict(obj, path):
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        die(f"{path}: not a state_dict of tensors")
    return collections.OrderedDict((k[7:] if k.startswith("module.") else k, v) for k, v in obj.items())


def infer_config(sd, heads, T, path):
    def need(name):
        if name not in sd:
            die(f"{path}: tensor {name!r} missing; is this the seed's VisionTransformer?")
        return sd[name]

    pc = need("patch_conv.weight")
    pos = need("position_embedding")
    D, P = pc.shape[0], pc.shape[2]
    M, N = pos.shape[1], pos.shape[2]
    L = len({k.split(".")[1] for k in sd if k.startswith("msa_layer.")})
    HA = need("msa_layer.0.query.weight").shape[0] if L else heads
    if HA % heads:
        die(f"{path}: H*A = {HA} is not divisible by --heads {heads}")
    hidden = need("dense_tower.0.weight").shape[0]
    C = need("dense_tower.3.weight").shape[0]
    T = T if T else N * P
    if T // P != N:
        die(f"{path}: --T {T} gives {T // P} patches but the position table has {N}")
    cfg = dict(model="vit", T=int(T), M=int(M), C=int(C), P=int(P), D=int(D), H=int(heads), A=int(HA // heads),
               L=int(L), hidden=int(hidden))
    n = N
    for _ in range(L):
        n = (n + 1) // 2
    F = M * n * D
    if need("dense_tower.0.weight").shape[1] != F:
        die(f"{path}: dense_tower.0.weight has {need('dense_tower.0.weight').shape[1]} inputs, config gives {F}")
    return cfg


def to_safetensors(args):
    sd = unwrap_state_dict(torch.load(args.input, map_location="cpu"), args.input)
    cfg = infer_config(sd, args.heads, args.T, args.input)
    tensors = collections.OrderedDict((k, v.detach().float().contiguous().numpy()) for k, v in sd.items())
    meta = {"format": "harvit-checkpoint", "version": "1", "config": json.dumps(cfg)}
    if args.class_names:
        names = args.class_names.split(",")
        if len(names) != cfg["C"]:
            die(f"{len(names)} class names for C={cfg['C']} classes")
        meta["class_names"] = json.dumps(names)
    safetensors_io.save(args.output, tensors, meta)
    print(f"wrote {args.output}: {sum(t.size for t in tensors.values()):,} parameters, config {json.dumps(cfg)}")


def to_torch(args):
    tensors, meta = safetensors_io.load(args.input)
    if "config" not in meta:
        die(f"{args.input}: no config in the metadata; not a harvit checkpoint")
    sd = collections.OrderedDict((k, torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)))
                                 for k, v in tensors.items())
    tmp = f"{args.output}.tmp.{os.getpid()}"
    torch.save(sd, tmp)
    os.replace(tmp, args.output)
    print(f"wrote {args.output}: state_dict with {len(sd)} tensors; config {meta['config']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("to-safetensors")
    a.add_argument("input")
    a.add_argument("output")
    a.add_argument("--heads", type=int, default=4)
    a.add_argument("--T", type=int, default=0, help="window length (default: patches * patch length)")
    a.add_argument("--class-names", default="")
    b = sub.add_parser("to-torch")
    b.add_argument("input")
    b.add_argument("output")
    args = ap.parse_args()
    to_safetensors(args) if args.cmd == "to-safetensors" else to_torch(args)


if __name__ == "__main__":
    main()
