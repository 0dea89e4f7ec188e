#!/usr/bin/env python3
"""Round trip between the seed's PyTorch code and harvit (ctest: torch_roundtrip).

1. Train the PyTorch reference a few steps, torch.save(model.state_dict()) as the seed does.
2. Convert with torch_to_safetensors.py; harvit's logits must equal PyTorch's.
3. Train the model a few steps in harvit, convert back; PyTorch's logits must equal harvit's.
Exits 77 (skipped) where torch is not installed.
"""
import argparse
import os
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print("python3-torch is not installed: skipping the PyTorch round trip")
    sys.exit(77)
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
import torch_reference as ref  # noqa: E402

TOL = 1e-4


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        print(r.stdout, r.stderr)
        sys.exit(f"failed: {' '.join(cmd)}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--st-logits", required=True)
    ap.add_argument("--harvit", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    cfg = ref.config_dict()
    model = ref.build(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=1e-3)
    x = torch.randn(16, 1, cfg["T"], cfg["M"])
    y = torch.randint(0, cfg["C"], (16,))
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    ok = True
    with tempfile.TemporaryDirectory() as d:
        pt, st = os.path.join(d, "seed.pt"), os.path.join(d, "seed.safetensors")
        torch.save(model.state_dict(), pt)
        run([sys.executable, os.path.join(HERE, "torch_to_safetensors.py"), "to-safetensors", pt, st])
        info = run([args.harvit, "info", "--model", st])
        if "4,367,366" not in info:
            print(info)
            ok = False
        inp, out = os.path.join(d, "in.safetensors"), os.path.join(d, "out.safetensors")
        safetensors_io.save(inp, {"x": x.numpy(), "y": y.numpy().astype(np.int32)})
        back_st, back_pt = os.path.join(d, "harvit.safetensors"), os.path.join(d, "harvit.pt")
        run([args.st_logits, st, inp, out, "3", back_st])
        got, _ = safetensors_io.load(out)
        with torch.no_grad():
            want = model(x).numpy()
        r1 = rel(got["logits"], want)
        print(f"PyTorch -> harvit: logits rel diff {r1:.2e}")
        run([sys.executable, os.path.join(HERE, "torch_to_safetensors.py"), "to-torch", back_st, back_pt])
        m2 = ref.build(cfg)
        m2.load_state_dict(torch.load(back_pt), strict=True)
        with torch.no_grad():
            want2 = m2(x).numpy()
        r2 = rel(want2, got["logits_after"])
        print(f"harvit (3 AdamW steps) -> PyTorch: logits rel diff {r2:.2e}")
        ok = ok and r1 <= TOL and r2 <= TOL
    print("round trip OK" if ok else "round trip FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
