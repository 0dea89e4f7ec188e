#!/usr/bin/env python3
"""Export the seed's sensor ViT (tools/torch_reference.py's model class) to ONNX, for the ONNX
Runtime peer of bench/compare_torch (bench/ort/bench_ort.js).

  export_onnx.py --out vit.onnx                          seed config, harvit's bench parameters
  export_onnx.py --out vit.onnx --init random            seed config, PyTorch's default init
  export_onnx.py --out vit.onnx --checkpoint best.safetensors   a harvit checkpoint (its config)

Input "x" [N, 1, T, M] float32, output "logits" [N, C]; N is a dynamic axis. Opset 14.
The default parameters are exactly those of bench/bench_common.h's SeedModel: harvit's
xoshiro256** Rng(1) drawn through ParamSlab::init_default in harvit's registration order (the
state_dict order with each module's own parameters first), so ONNX Runtime and bench_infer run
the same numbers (timing does not depend on them; this is for honesty, and costs ~5 s of pure
Python). Needs only Debian's python3-torch (torch.onnx.export writes the protobuf itself; the
`onnx` package is not needed).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
import torch_reference as tr  # noqa: E402

_M64 = (1 << 64) - 1


def _splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


class HarvitRng:
    """src/core/rng.cpp's Rng (xoshiro256** seeded through SplitMix64): uniform() only."""

    def __init__(self, seed):
        s, x = [], seed
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & _M64
            s.append(_splitmix64(x))
        self.s = s

    def top24(self, n):
        """n successive next_u64() >> 40 (the 24 bits uniform() uses), as a uint32 array."""
        s0, s1, s2, s3 = self.s
        out = [0] * n
        for i in range(n):
            r = (s1 * 5) & _M64
            out[i] = ((((r << 7) | (r >> 57)) & _M64) * 9 & _M64) >> 40
            t = (s1 << 17) & _M64
            s2 ^= s0
            s3 ^= s1
            s1 ^= s2
            s0 ^= s3
            s2 ^= t
            s3 = ((s3 << 45) | (s3 >> 19)) & _M64
        self.s = [s0, s1, s2, s3]
        return np.array(out, dtype=np.uint32)


def harvit_bench_params(cfg, seed=1):
    """The parameters of bench::SeedModel: Vit's ParamSlab::init_default with Rng(seed)."""
    D, HA, P = cfg["D"], cfg["H"] * cfg["A"], cfg["P"]
    n = cfg["T"] // P
    for _ in range(cfg["L"]):
        n = (n + 1) // 2
    F = cfg["M"] * n * D
    # (name, shape, init, fan_in) in src/nn/vit.cpp's registration order.
    reg = [("position_embedding", (1, cfg["M"], cfg["T"] // P, D), "zeros", 0),
           ("patch_conv.weight", (D, 1, P, 1), "uniform", P), ("patch_conv.bias", (D,), "uniform", P)]
    for l in range(cfg["L"]):
        p = f"msa_layer.{l}."
        for q in ("query.", "key.", "value."):
            reg += [(p + q + "weight", (HA, D), "uniform", D), (p + q + "bias", (HA,), "uniform", D)]
        reg += [(p + "att_mlp.0.weight", (D, HA), "uniform", HA), (p + "att_mlp.0.bias", (D,), "uniform", HA),
                (p + "att_mlp.1.weight", (D,), "ones", 0), (p + "att_mlp.1.bias", (D,), "zeros", 0),
                (p + "downsample_mlp.0.weight", (D, 2 * D), "uniform", 2 * D),
                (p + "downsample_mlp.0.bias", (D,), "uniform", 2 * D),
                (p + "downsample_mlp.1.weight", (D,), "ones", 0), (p + "downsample_mlp.1.bias", (D,), "zeros", 0)]
    reg += [("dense_tower.0.weight", (cfg["hidden"], F), "uniform", F),
            ("dense_tower.0.bias", (cfg["hidden"],), "uniform", F),
            ("dense_tower.1.weight", (cfg["hidden"],), "ones", 0), ("dense_tower.1.bias", (cfg["hidden"],), "zeros", 0),
            ("dense_tower.3.weight", (cfg["C"], cfg["hidden"]), "uniform", cfg["hidden"]),
            ("dense_tower.3.bias", (cfg["C"],), "uniform", cfg["hidden"])]
    rng = HarvitRng(seed)
    out = {}
    for name, shape, init, fan_in in reg:
        size = int(np.prod(shape))
        if init == "uniform":
            # Rng::uniform(lo, hi) = lo + (hi - lo) * uniform(), in float.
            b = np.float32(1.0 / math.sqrt(fan_in))
            u = rng.top24(size).astype(np.float32) * np.float32(1.0 / 16777216.0)
            v = -b + (b - -b) * u
        else:
            v = np.full(size, 1.0 if init == "ones" else 0.0, dtype=np.float32)
        out[name] = torch.from_numpy(v.astype(np.float32).reshape(shape))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="the .onnx file to write")
    ap.add_argument("--checkpoint", default="", help="a harvit .safetensors checkpoint (its config and weights)")
    ap.add_argument("--init", choices=["harvit-bench", "random"], default="harvit-bench",
                    help="parameters without --checkpoint: bench_common.h's SeedModel, or PyTorch's default init")
    ap.add_argument("--opset", type=int, default=14)
    args = ap.parse_args()
    if args.checkpoint:
        tensors, meta = safetensors_io.load(args.checkpoint)
        if "config" not in meta:
            sys.exit(f"export_onnx: {args.checkpoint}: no config in the metadata; not a harvit checkpoint")
        cfg = json.loads(meta["config"])
        if cfg.get("model", "vit") != "vit":
            sys.exit(f"export_onnx: {args.checkpoint}: model {cfg.get('model')!r}; only the ViT is exported")
        model = tr.build(cfg)
        keys = model.state_dict().keys()
        missing = [k for k in keys if k not in tensors]
        if missing:
            sys.exit(f"export_onnx: {args.checkpoint}: tensors missing: {', '.join(missing[:5])}")
        model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(tensors[k], dtype=np.float32)) for k in keys})
        source = args.checkpoint
    else:
        cfg = tr.config_dict()
        torch.manual_seed(0)
        model = tr.build(cfg)
        if args.init == "harvit-bench":
            model.load_state_dict(harvit_bench_params(cfg))
        source = args.init
    model.eval()
    x = torch.zeros(1, 1, cfg["T"], cfg["M"])
    tmp = f"{args.out}.tmp.{os.getpid()}"
    with torch.no_grad():
        torch.onnx.export(model, x, tmp, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, opset_version=args.opset,
                          do_constant_folding=True)
    os.replace(tmp, args.out)
    print(f"export_onnx: wrote {args.out} (opset {args.opset}, parameters: {source}, config {json.dumps(cfg)})",
          file=sys.stderr)


if __name__ == "__main__":
    main()
